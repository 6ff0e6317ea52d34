package bundle

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/internal/upstream"
)

// backend is what holds the series in a stack: a Prometheus, or
// VictoriaMetrics scraping with the same config and vmalert running the rules.
type backend struct {
	name        string
	prom        upstream.Binary // Prometheus
	vm, vmalert string          // or VictoriaMetrics + vmalert
}

// backends are Debian's Prometheus (2.42, the oldest supported), the current
// release, and current VictoriaMetrics + vmalert: each that is installed.
func backends(t *testing.T) []backend {
	var out []backend
	for _, p := range upstream.All(t, "prometheus", "prometheus") {
		out = append(out, backend{name: p.Name, prom: p})
	}
	vm, err1 := upstream.Path("victoria-metrics")
	vmalert, err2 := upstream.Path("vmalert")
	if err1 != nil || err2 != nil {
		t.Logf("UPSTREAM MISSING: no VictoriaMetrics stack: %v %v", err1, err2)
	} else {
		rel, _ := upstream.Release("victoria-metrics")
		out = append(out, backend{name: "victoria-metrics " + rel + " + vmalert", vm: vm, vmalert: vmalert})
	}
	return out
}

// startTSDB starts the backend on promFile and returns its query URL.
// VictoriaMetrics scrapes with the same file (skipping rule_files, which it
// does not know) and vmalert evaluates the rules and writes the results back.
func startTSDB(t *testing.T, b backend, dir, promFile string, rules []string) string {
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if b.vm == "" {
		start(t, b.prom.Path, "--config.file="+promFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
		return base
	}
	// Without VictoriaMetrics' 30s latency offset and vmalert's matching 30s
	// evaluation delay (defaults the compose file keeps): with them each level
	// of recording rules lags 30s, too slow for a one-minute test.
	start(t, b.vm, "-storageDataPath="+filepath.Join(dir, "vm"), fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", port),
		"-promscrape.config="+promFile, "-promscrape.config.strictParse=false",
		"-search.latencyOffset=0s", "-search.disableCache")
	args := []string{"-datasource.url=" + base, "-remoteWrite.url=" + base, "-notifier.blackhole",
		"-evaluationInterval=1s", "-remoteWrite.flushInterval=500ms", "-rule.evalDelay=0s", fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", testutil.FreePort(t))}
	for _, r := range rules {
		args = append(args, "-rule="+r)
	}
	start(t, b.vmalert, args...)
	return base
}

// lastSamples says how old the newest sample of each series in expr is, to
// tell a stale series from one never written.
func (s *stack) lastSamples(expr string) string {
	var out []string
	for _, m := range metricRe.FindAllString(expr, -1) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := s.get(ctx, "/api/v1/query", url.Values{"query": {"time() - timestamp(last_over_time(" + m + "[10m]))"}})
		cancel()
		if err != nil {
			out = append(out, m+": "+err.Error())
			continue
		}
		var ages []string
		for _, res := range r.Data.Result {
			var v struct {
				Value [2]any `json:"value"`
			}
			json.Unmarshal(res, &v)
			ages = append(ages, fmt.Sprint(v.Value[1]))
		}
		out = append(out, fmt.Sprintf("%s: newest samples %v s old", m, ages))
	}
	return strings.Join(out, "; ")
}
