package probes

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/testutil"
)

// streamed is what one Stream sent: each metric's series as
// name{label="value",...}, and how the chunks came.
type streamed struct {
	series []string
	chunks map[string][]int // family: sizes of its chunks, in order
	order  []string         // families in the order they began
}

// streamMesh streams c, checking on the way what every stream must do:
// label pairs sorted and matching the family's Desc (MakeLabelPairs over
// the values in the Desc's order), chunks of at most ChunkSize, a family's
// chunks one after another, families in name order, and c's lock free
// while emit has a chunk.
func streamMesh(t *testing.T, c *meshCollector) streamed {
	t.Helper()
	out := streamed{chunks: map[string][]int{}}
	err := c.Stream(func(mf *dto.MetricFamily) error {
		name := mf.GetName()
		if c.mu.TryLock() {
			c.mu.Unlock()
		} else {
			t.Errorf("%s: the collector's lock is held while a chunk is out", name)
		}
		if n := len(out.order); n == 0 || out.order[n-1] != name {
			if slices.Contains(out.order, name) {
				t.Errorf("family %s streamed again after %s", name, out.order[n-1])
			}
			out.order = append(out.order, name)
		}
		if len(mf.Metric) > collector.ChunkSize {
			t.Errorf("%s: chunk of %d metrics", name, len(mf.Metric))
		}
		out.chunks[name] = append(out.chunks[name], len(mf.Metric))
		desc := c.fams.desc(name)
		for _, m := range mf.Metric {
			checkPairs(t, name, desc, m.Label)
			out.series = append(out.series, seriesString(name, m.Label))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(out.order) {
		t.Errorf("families not in name order: %v", out.order)
	}
	slices.Sort(out.series)
	return out
}

// checkPairs compares a streamed metric's label pairs with client_golang's
// MakeLabelPairs for the same values, in the order desc declares them.
func checkPairs(t *testing.T, name string, desc *prometheus.Desc, got []*dto.LabelPair) {
	t.Helper()
	if desc == nil {
		t.Fatalf("%s: no Desc", name)
	}
	// The Desc's String lists its variable labels in their declared order.
	s := desc.String()
	i := strings.Index(s, "variableLabels: {")
	vars := strings.Split(strings.TrimSuffix(s[i+len("variableLabels: {"):], "}}"), ",")
	if vars[0] == "" {
		vars = nil
	}
	byName := map[string]string{}
	for _, p := range got {
		byName[p.GetName()] = p.GetValue()
	}
	var values []string
	for _, v := range vars {
		values = append(values, byName[v])
	}
	want := prometheus.MakeLabelPairs(desc, values)
	if len(got) != len(want) {
		t.Fatalf("%s: pairs %v, want %v", name, got, want)
	}
	for i := range want {
		if got[i].GetName() != want[i].GetName() || got[i].GetValue() != want[i].GetValue() {
			t.Errorf("%s: pair %d is %s=%q, want %s=%q", name, i, got[i].GetName(), got[i].GetValue(), want[i].GetName(), want[i].GetValue())
		}
	}
}

func seriesString(name string, ps []*dto.LabelPair) string {
	var l []string
	for _, p := range ps {
		if p.GetValue() != "" {
			l = append(l, fmt.Sprintf("%s=%q", p.GetName(), p.GetValue()))
		}
	}
	return name + "{" + strings.Join(l, ",") + "}"
}

// A peer probed over every protocol and one over UDP only, with custom
// labels sorting before, between and after the mesh's own: every series the
// config calls for is streamed, once, with the right label pairs, and the
// gathered view (Update) has the same series.
func TestMeshStreamSeries(t *testing.T) {
	port := testutil.FreePort(t)
	cfg := mustParse(t, fmt.Sprintf(`
global: {labels: {site: s1}}
mesh:
  responder: {listen: 127.0.0.1, udp_port: %[1]d, tcp_port: %[1]d}
  interval: 20ms
  timeout: 500ms
  peers:
    - {address: "127.0.0.1:%[1]d", name: all, protocols: [udp, tcp, tcp_connect], labels: {aaa: x, zone: z}}
    - {address: "127.0.0.1:%[1]d", name: u}
`, port))
	cc, err := newMeshCollector(testutil.Logger(), cfg, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	c := cc.(*meshCollector)
	defer c.Close()
	testutil.WaitFor(t, 10*time.Second, "replies over every protocol and a clock estimate", func() bool {
		s := strings.Join(streamMesh(t, c).series, "\n")
		c.mu.Lock()
		st := c.entries[0].stats
		c.mu.Unlock()
		return strings.Contains(s, `smokemon_mesh_clock_trustworthy{peer="u"`) &&
			st.received[0].Load() > 0 && st.received[1].Load() > 0 && st.received[2].Load() > 0
	})
	got := streamMesh(t, c)

	var want []string
	add := func(f string, kv ...string) {
		var l []string
		for i := 0; i < len(kv); i += 2 {
			l = append(l, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
		}
		slices.Sort(l)
		want = append(want, "smokemon_mesh_"+f+"{"+strings.Join(l, ",")+"}")
	}
	for _, own := range [][]string{{"peer", "all", "aaa", "x", "zone", "z", "site", "s1"}, {"peer", "u", "site", "s1"}} {
		with := func(kv ...string) []string { return append(kv, own...) }
		protos := []string{"udp"}
		if own[1] == "all" {
			protos = []string{"udp", "tcp", "tcp_connect"}
			add("tcp_reconnects_total", own...)
		}
		for _, pr := range protos {
			add("sent_total", with("protocol", pr)...)
			add("received_total", with("protocol", pr)...)
			add("rtt_seconds", with("protocol", pr)...)
			dirs := []string{"unknown"}
			if pr == "udp" {
				dirs = []string{"forward", "return", "unknown"}
			}
			for _, d := range dirs {
				add("lost_total", with("protocol", pr, "direction", d)...)
			}
		}
		for _, d := range []string{"forward", "return"} {
			add("reordered_total", with("direction", d)...)
			add("one_way_delay_seconds", with("direction", d)...)
		}
		for _, f := range []string{"clock_offset_seconds", "clock_offset_uncertainty_seconds", "clock_trustworthy", "peer_up"} {
			add(f, own...)
		}
		add("peer_info", with("address", fmt.Sprintf("127.0.0.1:%d", port), "ip", "127.0.0.1")...)
	}
	add("prober_up")
	for _, r := range []string{"foreign", "late", "malformed"} {
		add("unmatched_replies_total", "reason", r)
	}
	for _, f := range []string{"responder_up", "responder_requests_total", "responder_replies_total", "responder_rate_limited_total", "responder_malformed_total"} {
		add(f, "protocol", "tcp")
		add(f, "protocol", "udp")
	}
	add("responder_tcp_connections_refused_total")
	slices.Sort(want)
	if !slices.Equal(got.series, want) {
		t.Errorf("streamed series:\n%s\nwant:\n%s", strings.Join(got.series, "\n"), strings.Join(want, "\n"))
	}

	var gathered []string
	for _, mf := range testutil.Gather(t, collector.SetOf(testutil.Logger(), map[string]collector.Collector{"mesh": c})) {
		if strings.HasPrefix(mf.GetName(), "smokemon_mesh_") {
			for _, m := range mf.Metric {
				gathered = append(gathered, seriesString(mf.GetName(), m.Label))
			}
		}
	}
	slices.Sort(gathered)
	if !slices.Equal(gathered, want) {
		t.Errorf("gathered series:\n%s\nwant:\n%s", strings.Join(gathered, "\n"), strings.Join(want, "\n"))
	}
}

// 300 peers: a family of more than ChunkSize metrics comes in chunks, one
// after another, that add up to every peer's.
func TestMeshStreamChunks(t *testing.T) {
	const n = 300
	port := testutil.FreePort(t)
	var y strings.Builder
	fmt.Fprintf(&y, "mesh:\n  interval: 1h\n  protocols: [udp]\n  peers:\n")
	for i := range n {
		fmt.Fprintf(&y, "    - {address: \"127.0.0.1:%d\", name: p%d}\n", port, i)
	}
	cc, err := newMeshCollector(testutil.Logger(), mustParse(t, y.String()), testDeps())
	if err != nil {
		t.Fatal(err)
	}
	c := cc.(*meshCollector)
	defer c.Close()
	got := streamMesh(t, c)
	for fam, want := range map[string][]int{
		"smokemon_mesh_peer_up":     {256, n - 256},
		"smokemon_mesh_lost_total":  {256, 256, 256, 3*n - 768},
		"smokemon_mesh_rtt_seconds": chunksOf(n, histChunkSize),
	} {
		if !slices.Equal(got.chunks[fam], want) {
			t.Errorf("%s came in chunks of %v, want %v", fam, got.chunks[fam], want)
		}
	}
}

// chunksOf is n metrics in chunks of size.
func chunksOf(n, size int) []int {
	var out []int
	for ; n > 0; n -= size {
		out = append(out, min(n, size))
	}
	return out
}
