package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/lograte"
	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/internal/upstream"
)

// chunky streams n counters, gauges and histograms (classic and native) a
// few metrics a chunk, in label order, with label values that need escaping
// in the text formats; its Update is the same stream gathered.
type chunky struct {
	n     int
	per   int // metrics per chunk
	descs map[string]*prometheus.Desc
}

func newChunky(n, per int) *chunky {
	c := &chunky{n: n, per: per, descs: map[string]*prometheus.Desc{}}
	for _, name := range []string{"chunky_a_total", "chunky_b", "chunky_c_seconds"} {
		c.descs[name] = prometheus.NewDesc(name, "Help with \\ and \n in it.", []string{"target", "z"}, nil)
	}
	return c
}

func (c *chunky) Update(ch chan<- prometheus.Metric) error {
	return collector.StreamUpdate(c, func(name string) *prometheus.Desc { return c.descs[name] }, ch)
}

func (c *chunky) Stream(emit func(*dto.MetricFamily) error) error {
	for fi, name := range []string{"chunky_a_total", "chunky_b", "chunky_c_seconds"} {
		typ := []dto.MetricType{dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM}[fi]
		mf := &dto.MetricFamily{Name: proto.String(name), Help: proto.String("Help with \\ and \n in it."), Type: &typ}
		for i := range c.n {
			m := &dto.Metric{Label: []*dto.LabelPair{
				{Name: proto.String("target"), Value: proto.String(fmt.Sprintf("t%05d \"q\" \\ \n", i))},
				{Name: proto.String("z"), Value: proto.String("ü")},
			}}
			v := float64(i*7+fi) / 3
			switch typ {
			case dto.MetricType_COUNTER:
				m.Counter = &dto.Counter{Value: &v}
			case dto.MetricType_GAUGE:
				m.Gauge = &dto.Gauge{Value: &v}
			default:
				n := uint64(i + 3)
				m.Histogram = &dto.Histogram{SampleCount: &n, SampleSum: &v,
					Bucket:        []*dto.Bucket{{CumulativeCount: proto.Uint64(1), UpperBound: proto.Float64(0.001)}},
					Schema:        proto.Int32(4),
					ZeroThreshold: proto.Float64(1e-39), ZeroCount: proto.Uint64(0),
					PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(int32(-i)), Length: proto.Uint32(2)}},
					PositiveDelta: []int64{1, int64(i)}}
			}
			mf.Metric = append(mf.Metric, m)
			if len(mf.Metric) == c.per || i == c.n-1 {
				if err := emit(mf); err != nil {
					return err
				}
				mf.Metric = nil
			}
		}
	}
	return nil
}

type plain struct{ d *prometheus.Desc }

func (p plain) Update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(p.d, prometheus.GaugeValue, 42, "x")
	return nil
}

// familyBlocks splits a text exposition into its families' blocks, by
// family, with the scrape's own duration sample (which differs from one
// scrape to the next) left out.
func familyBlocks(body string) map[string]string {
	out := map[string]string{}
	var name string
	for _, line := range strings.SplitAfter(body, "\n") {
		if strings.HasPrefix(line, "# HELP ") || (strings.HasPrefix(line, "# TYPE ") && name == "") {
			name = strings.Fields(line)[2]
		}
		if strings.HasPrefix(line, "smokemon_scrape_collector_duration_seconds") || line == "" {
			continue
		}
		out[name] += line
		if strings.HasPrefix(line, "# EOF") {
			name = ""
		}
	}
	return out
}

func scrapeWith(t *testing.T, h http.Handler, accept, encoding string) (string, http.Header) {
	return scrapeQuery(t, h, "", accept, encoding)
}

func scrapeQuery(t *testing.T, h http.Handler, query, accept, encoding string) (string, http.Header) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics"+query, nil)
	req.Header.Set("Accept", accept)
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("%s: status %d: %s", accept, rec.Code, rec.Body)
	}
	body := rec.Body.Bytes()
	if rec.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return string(body), rec.Header()
}

// The streaming handler says, in every format it offers, what promhttp says
// of the same collectors gathered at once: family by family, byte for byte
// in the text formats and message for message in the protobuf one, though
// the streamed families came in chunks of 7.
func TestStreamedScrapeEqualsGather(t *testing.T) {
	c := newChunky(100, 7)
	cs := map[string]collector.Collector{"chunky": c, "plain": plain{prometheus.NewDesc("smokemon_plain", "Plain.", []string{"l"}, nil)}}
	set := collector.SetOf(testutil.Logger(), cs)
	streamReg := prometheus.NewPedanticRegistry()
	streamReg.MustRegister(set.Streaming())
	ours := newMetricsHandler(set, streamReg, lograte.ScrapeErrorLog{Logger: testutil.Logger()}, 0)
	gatherReg := prometheus.NewPedanticRegistry()
	gatherReg.MustRegister(collector.SetOf(testutil.Logger(), cs))
	theirs := promhttp.HandlerFor(gatherReg, promhttp.HandlerOpts{EnableOpenMetrics: true})

	for _, accept := range []string{
		"text/plain;version=0.0.4",
		"application/openmetrics-text;version=1.0.0",
		"application/openmetrics-text;version=0.0.1;escaping=underscores",
		"*/*",
	} {
		for _, enc := range []string{"", "gzip"} {
			got, hdr := scrapeWith(t, ours, accept, enc)
			want, wantHdr := scrapeWith(t, theirs, accept, enc)
			if hdr.Get("Content-Type") != wantHdr.Get("Content-Type") || hdr.Get("Content-Encoding") != wantHdr.Get("Content-Encoding") {
				t.Errorf("%s %q: headers %v, promhttp's %v", accept, enc, hdr, wantHdr)
			}
			g, w := familyBlocks(got), familyBlocks(want)
			for name, block := range w {
				if g[name] != block {
					t.Errorf("%s %q: family %q:\n%s\npromhttp:\n%s", accept, enc, name, g[name], block)
				}
			}
			if len(g) != len(w) {
				t.Errorf("%s: %d families, promhttp %d", accept, len(g), len(w))
			}
			if strings.Contains(accept, "openmetrics") && !strings.HasSuffix(got, "# EOF\n") {
				t.Errorf("%s: no # EOF at the end", accept)
			}
		}
	}

	for _, q := range []string{"?name[]=chunky_b", "?name[]=chunky_c_seconds&name[]=smokemon_plain", "?name[]=none"} {
		got, _ := scrapeQuery(t, ours, q, "text/plain;version=0.0.4", "")
		want, _ := scrapeQuery(t, theirs, q, "text/plain;version=0.0.4", "")
		if got != want {
			t.Errorf("%s:\n%s\npromhttp:\n%s", q, got, want)
		}
	}

	decode := func(h http.Handler) map[string]*dto.MetricFamily {
		body, _ := scrapeWith(t, h, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "gzip")
		dec := expfmt.NewDecoder(strings.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
		out := map[string]*dto.MetricFamily{}
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err == io.EOF {
				return out
			} else if err != nil {
				t.Fatal(err)
			}
			if _, dup := out[mf.GetName()]; dup {
				t.Errorf("protobuf: family %s twice", mf.GetName())
			}
			if mf.GetName() == "smokemon_scrape_collector_duration_seconds" {
				mf.Metric = nil
			}
			out[mf.GetName()] = &mf
		}
	}
	got, want := decode(ours), decode(theirs)
	if len(got) != len(want) {
		t.Errorf("protobuf: %d families, promhttp %d", len(got), len(want))
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !proto.Equal(got[name], want[name]) {
			t.Errorf("protobuf: family %s differs:\n%v\npromhttp:\n%v", name, got[name], want[name])
		}
	}
	if n := len(got["chunky_c_seconds"].GetMetric()); n != 100 {
		t.Errorf("protobuf: %d histograms, want 100", n)
	}
}

// A real Prometheus reads the chunked families whole: 300 targets make two
// chunks of every per-target family, scraped over protobuf (with native
// histograms) and over OpenMetrics (classic buckets).
func TestChunkedScrapeIntoPrometheus(t *testing.T) {
	prom := upstream.Current(t, "prometheus", "prometheus")
	if !prom.Current {
		t.Skip("Debian's Prometheus 2.x has no scrape_native_histograms; needs the .ci/upstream build")
	}
	const n = 300
	var cfg strings.Builder
	cfg.WriteString("global: {interval: 1s, timeout: 1s}\nping:\n  targets:\n")
	for i := range n {
		fmt.Fprintf(&cfg, "    - {host: 127.0.%d.%d, labels: {rack: \"r%d\"}}\n", i/200+1, i%200+1, i%3)
	}
	e := start(t, "--config.file="+writeFile(t, t.TempDir(), "smokemon.yml", cfg.String()), "--collector.disable-defaults", "--collector.ping")
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("scrape_native_histograms=%v", native), func(t *testing.T) {
			base := startPrometheus(t, prom.Path, strings.TrimPrefix(e.base, "http://"), native)
			want := map[string]string{
				"count(smokemon_ping_sent_total)":                                 "300",
				"count(smokemon_ping_target_info)":                                "300",
				`count(smokemon_ping_target_up{rack="r2"} == 1)`:                  "100",
				`count(smokemon_scrape_collector_success{collector="ping"} == 1)`: "1",
			}
			if native { // the native histogram alone, as Prometheus keeps it
				want["count(smokemon_ping_rtt_seconds)"] = "300"
			} else {
				want["count(smokemon_ping_rtt_seconds_count)"] = "300"
				want[`count(smokemon_ping_rtt_seconds_bucket{le="+Inf"})`] = "300"
				want[`count(smokemon_ping_rtt_seconds_bucket{le="0.001"})`] = "300"
			}
			got := map[string]string{}
			ok := testutil.Eventually(60*time.Second, 500*time.Millisecond, func() bool {
				all := true
				for q, w := range want {
					got[q] = promQuery(t, base, q)
					all = all && got[q] == w
				}
				return all
			})
			if !ok {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}
