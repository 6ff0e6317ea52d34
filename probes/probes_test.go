package probes

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/testutil"
)

func TestMain(m *testing.M) {
	// Flag defaults (--ping.socket, the path flags) are applied by Parse.
	if _, err := kingpin.CommandLine.Parse(nil); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// testDeps are the exporter's own: the tests that need another resolver,
// namespace or root change a copy.
func testDeps() Deps { return DefaultDeps() }

// fnCollector is a collector made of one Update function.
type fnCollector func(ch chan<- prometheus.Metric) error

func (f fnCollector) Update(ch chan<- prometheus.Metric) error { return f(ch) }

// reload prepares cfg in c and commits it, as a Set does for one collector.
func reload(c collector.Collector, cfg *config.Config) error {
	return collector.Apply(c.(collector.Reloader), cfg)
}

// refuser is a collector whose Prepare fails for a config that sets the
// global label "refuse": it stands for any collector that cannot take a
// config (the framework's side of the contract is what is tested here).
type refuser struct{ committed int }

func (r *refuser) Update(chan<- prometheus.Metric) error { return collector.ErrNoData }
func (r *refuser) Prepare(cfg *config.Config) (func(), error) {
	if cfg.Global.Labels["refuse"] != "" {
		return nil, errors.New("refused")
	}
	return func() { r.committed++ }, nil
}

// A reload that one collector's Prepare refuses changes nothing in any
// collector: every registered probe keeps its old targets, labels and schedules. Once
// nobody refuses, every collector takes the new config.
func TestReloadIsAllOrNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go acceptAndClose(l)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	yml := func(name, extra string) *config.Config {
		return mustParse(t, fmt.Sprintf(`
global: {labels: {site: home%[4]s}}
tcp: {interval: 50ms, targets: [{address: %[2]q, name: %[1]s-tcp}]}
http: {interval: 50ms, targets: [{url: %[3]q, name: %[1]s-http}]}
dns: {interval: 50ms, targets: [{query: www.lab.test, name: %[1]s-dns, resolvers: ["127.0.0.1:1"]}]}
ping: {targets: [{host: 127.0.0.1, name: %[1]s-ping}]}
mtr: {targets: [{host: 127.0.0.1, name: %[1]s-mtr}]}
bandwidth: {targets: [{server: 127.0.0.1, name: %[1]s-bandwidth, interval: 1h, splay: 1h}]}
synthetic: {interval: 1h, captive_portal: [{url: %[3]q, name: %[1]s-synthetic}]}
mesh: {interval: 1h, peers: [{address: %[2]q, name: %[1]s-mesh}]}
`, name, l.Addr().String(), srv.URL+"/", extra))
	}
	old := yml("old", "")
	cs := map[string]collector.Collector{"refuser": &refuser{}}
	probes := registered
	for name, f := range probes {
		c, err := f(testutil.Logger(), old, testDeps())
		if err != nil {
			t.Fatal(err)
		}
		cs[name] = c
	}
	set := collector.SetOf(testutil.Logger(), cs)
	defer set.Close()
	targets := func() []string { return probeTargets(t, set) }
	names := func(gen string) []string {
		var out []string
		for p := range probes {
			out = append(out, "site=home,target="+gen+"-"+p)
		}
		sort.Strings(out)
		return out
	}
	before := targets()
	for p := range probes {
		if !slices.Contains(before, "site=home,target=old-"+p) {
			t.Errorf("probe %s has no series here: give it a target in this test's config", p)
		}
	}
	if want := names("old"); !slices.Equal(before, want) {
		t.Fatalf("before any reload: %v, want %v", before, want)
	}
	if err := set.Reload(yml("new", ", refuse: yes")); err == nil || !strings.Contains(err.Error(), "refuser") {
		t.Fatalf("reload refused by one collector: err = %v", err)
	}
	if got := targets(); !slices.Equal(got, before) {
		t.Errorf("after a refused reload the targets are %v, want the old %v", got, before)
	}
	if n := cs["refuser"].(*refuser).committed; n != 0 {
		t.Errorf("refuser committed %d times", n)
	}
	if err := set.Reload(yml("new", "")); err != nil {
		t.Fatal(err)
	}
	if got, want := targets(), names("new"); !slices.Equal(got, want) {
		t.Errorf("after a good reload: %v, want %v", got, want)
	}
	if n := cs["refuser"].(*refuser).committed; n != 1 {
		t.Errorf("refuser committed %d times, want 1", n)
	}
}

// acceptAndClose completes every TCP handshake on ln, as a server that
// hangs up at once does, until ln is closed.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// probeTargets are the targets of every probe in set as its series name
// them (mesh: peer), with the global labels they carry, once per probe and
// target, sorted.
func probeTargets(t *testing.T, set *collector.Set) []string {
	t.Helper()
	mfs := testutil.Gather(t, set)
	seen := map[string]bool{}
	for _, mf := range mfs {
		probe, _, _ := strings.Cut(strings.TrimPrefix(mf.GetName(), collector.Namespace+"_"), "_")
		if registered[probe] == nil {
			continue
		}
		for _, m := range mf.Metric {
			var lv []string
			for _, lp := range m.Label {
				switch lp.GetName() {
				case "target", "peer":
					lv = append(lv, "target="+lp.GetValue())
				case "site", "refuse":
					lv = append(lv, lp.GetName()+"="+lp.GetValue())
				}
			}
			if len(lv) > 0 {
				sort.Strings(lv)
				seen[strings.Join(lv, ",")] = true
			}
		}
	}
	out := slices.Collect(maps.Keys(seen))
	sort.Strings(out)
	return out
}
