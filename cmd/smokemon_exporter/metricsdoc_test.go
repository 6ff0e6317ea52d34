package main

import (
	"bytes"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite docs/metrics.md from the real output")

const docPath = "../../docs/metrics.md"

const docHeader = `# smokemon_exporter metrics

Generated from the exporter's real output — a live scrape with every collector and probe
configured, plus the hardware fixtures under collector/testdata/fixtures — by
` + "`go test ./cmd/smokemon_exporter -run TestMetricsDoc -update`" + `. The same test fails when this
page and the output disagree, so it cannot drift. The standard ` + "`go_*` and `process_*`" + ` metrics of
client_golang are left out.

Besides the labels listed, every ping (and probe) series carries the custom labels of the config
(` + "`global.labels`, per-target `labels`" + `).
`

// observedFamilies gathers every metric family the exporter can produce:
// a live scrape inside a lab namespace where every probe has a loopback
// server to talk to (and one target with no route, for the error series),
// plus the fixture goldens for hardware this machine does not have.
func observedFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	out := map[string]*dto.MetricFamily{}
	merge := func(src string, text string) {
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for name, mf := range mfs {
			if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
				continue
			}
			if have, ok := out[name]; ok {
				have.Metric = append(have.Metric, mf.Metric...)
				continue
			}
			out[name] = mf
		}
	}
	merge("live scrape", docScrape(t))
	goldens, _ := filepath.Glob("../../collector/testdata/fixtures/*.golden")
	if len(goldens) == 0 {
		t.Fatal("no fixture goldens found")
	}
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		merge(g, string(b))
	}
	return out
}

// docScrape runs the exporter with a target of every kind, all on the
// namespace's loopback, and scrapes it once every probe has reported.
func docScrape(t *testing.T) string {
	lab.Require(t)
	h := lab.New(t).Host("doc")
	web := h.HTTPServer(t, "127.0.0.1", lab.HTTPOptions{})
	web.Mux.HandleFunc("/dns-query", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if err := q.Unpack(body); err != nil || len(q.Question) == 0 {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
		b, _ := m.Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(b)
	})
	resolver := h.DNSServer(t, "127.0.0.1")
	resolver.Set("smokemon.test", "127.0.0.1")
	iperf := h.Iperf3Server(t, "127.0.0.1")
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: web.Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "doc.yml", fmt.Sprintf(`
global: {interval: 200ms}
ping:
  targets:
    - {host: 127.0.0.1, name: v4}
    - {host: "::1", name: v6}
    - {host: 198.19.99.1, name: noroute}
mtr:
  interval: 1s
  targets:
    - {host: 127.0.0.1, name: lo}
http:
  interval: 1s
  targets:
    - {url: %[1]q, name: plain}
    - {url: %[2]q, name: tls, tls: {ca_file: %[3]q}}
dns:
  interval: 1s
  targets:
    - {query: smokemon.test, type: A, resolvers: ["%[4]s"], name: lab}
tcp:
  interval: 1s
  targets:
    - {address: "127.0.0.1:80", name: web}
synthetic:
  interval: 1s
  captive_portal:
    - {url: %[1]q, name: portal, expected_status: 200}
  doh:
    - {url: "%[2]sdns-query", name: doh, query: smokemon.test, tls: {ca_file: %[3]q}}
bandwidth:
  targets:
    - {server: %[5]q, name: lab, interval: 1m, splay: 0s, duration: 1s, idle_duration: 1s, ping_interval: 100ms}
mesh:
  responder: {udp_port: 9918, tcp_port: 9918}
  interval: 100ms
  protocols: [udp, tcp, tcp_connect]
  peers:
    - {address: "127.0.0.1:9918", name: self}
`, web.URL+"/", web.TLSURL+"/", ca, resolver.Addr, iperf))
	e := labExporter(t, h, nil, "--config.file="+cfg)
	var body string
	if testutil.Eventually(30*time.Second, 500*time.Millisecond, func() bool {
		body = e.scrape(t)
		// The bufferbloat grade comes last: after both directions of the
		// bandwidth test, seconds after the first direction's throughput.
		return len(unreported(body)) == 0 &&
			strings.Contains(body, "smokemon_bandwidth_bufferbloat_grade_info{") && strings.Contains(body, "smokemon_mtr_hop_rtt_avg_seconds{") &&
			strings.Contains(body, "smokemon_synthetic_doh_lookup_duration_seconds_count{") &&
			strings.Contains(body, "smokemon_mesh_one_way_delay_seconds_count{")
	}) {
		return body
	}
	if miss := unreported(body); len(miss) > 0 {
		t.Fatalf("probes %v have no series in the doc scrape: give each a target in docScrape's config", miss)
	}
	t.Fatalf("not every probe reported within 30s:\n%s", body)
	return ""
}

// unreported are the registered probes (every collector that is not a host
// collector) without a series of their own in body: the doc's probes come
// from the registry, so a new probe cannot be left out of the doc unnoticed.
func unreported(body string) []string {
	var miss []string
	for _, n := range collector.Names() {
		if !slices.Contains(collector.HostCollectors(), n) && !strings.Contains(body, "\n"+collector.Namespace+"_"+n+"_") {
			miss = append(miss, n)
		}
	}
	return miss
}

func renderDoc(mfs map[string]*dto.MetricFamily) string {
	names := make([]string, 0, len(mfs))
	for n := range mfs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(docHeader)
	section := ""
	for _, n := range names {
		mf := mfs[n]
		sub := strings.SplitN(strings.TrimPrefix(n, "smokemon_"), "_", 2)[0]
		if sub != section {
			section = sub
			fmt.Fprintf(&b, "\n## %s\n\n| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n", sub)
		}
		labels := map[string]bool{}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() != "le" && l.GetName() != "quantile" {
					labels[l.GetName()] = true
				}
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, "`"+l+"`")
		}
		sort.Strings(ls)
		help := strings.ReplaceAll(mf.GetHelp(), "|", `\|`)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", n, strings.ToLower(mf.GetType().String()), strings.Join(ls, ", "), help)
	}
	return b.String()
}

func TestMetricsDoc(t *testing.T) {
	mfs := observedFamilies(t)
	got := renderDoc(mfs)

	// Whatever this machine has must be documented too.
	live := start(t)
	time.Sleep(time.Second)
	p := expfmt.NewTextParser(model.UTF8Validation)
	liveMFs, err := p.TextToMetricFamilies(strings.NewReader(live.scrape(t)))
	if err != nil {
		t.Fatal(err)
	}
	for name := range liveMFs {
		if _, ok := mfs[name]; !ok && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("%s appears on this machine but in no fixture golden: add it to a fixture", name)
		}
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	if string(want) != got {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		in := func(l string, set []string) bool {
			for _, s := range set {
				if s == l {
					return true
				}
			}
			return false
		}
		var diff []string
		for _, l := range gl {
			if !in(l, wl) {
				diff = append(diff, "+ "+l)
			}
		}
		for _, l := range wl {
			if !in(l, gl) {
				diff = append(diff, "- "+l)
			}
		}
		t.Errorf("docs/metrics.md disagrees with the exporter's output (+ output, - doc); run go test ./cmd/smokemon_exporter -run TestMetricsDoc -update:\n%s", strings.Join(diff, "\n"))
	}
}

// The README's table of collectors names every registered collector, host
// collector or probe, and no other: the registry is the list.
func TestReadmeListsEveryCollector(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n### Collectors\n")
	if !ok {
		t.Fatal("README.md has no ### Collectors section")
	}
	table, _, _ = strings.Cut(table, "\n### ")
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|").FindAllStringSubmatch(table, -1) {
		listed = append(listed, m[1])
	}
	sort.Strings(listed)
	if want := collector.Names(); !slices.Equal(listed, want) {
		t.Errorf("README.md's collector table lists %v, the registered collectors are %v", listed, want)
	}
}
