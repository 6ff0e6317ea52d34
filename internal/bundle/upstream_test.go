package bundle

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/upstream"
)

// TestPromtool runs on Debian's promtool (2.42, the oldest supported) and
// the current release (.ci/upstream): the shipped config as that version
// loads it, the rules, and the rule tests.
func TestPromtool(t *testing.T) {
	dir := filepath.Join(root, "prometheus")
	rules, _ := filepath.Glob(filepath.Join(dir, "rules", "*.yml"))
	tests, _ := filepath.Glob(filepath.Join(dir, "tests", "*.yml"))
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatal("no rule or test files")
	}
	for _, promtool := range upstream.All(t, "promtool", "promtool") {
		t.Run(promtool.Name, func(t *testing.T) {
			run(t, dir, promtool.Path, "check", "config", shippedConfig(t, promtool))
			run(t, dir, append([]string{promtool.Path, "check", "rules"}, rules...)...)
			out := run(t, dir, append([]string{promtool.Path, "test", "rules"}, tests...)...)
			if strings.Contains(out, "FAILED") || strings.Count(out, "SUCCESS") != len(tests) {
				t.Fatalf("promtool test rules:\n%s", out)
			}
		})
	}
}

// prometheus3Only marks the lines of prometheus/prometheus.yml that
// Prometheus 2.x users delete (the file says so).
const prometheus3Only = "# Prometheus 3"

// shippedConfig returns prometheus/prometheus.yml as the given Prometheus (or
// promtool) loads it: the file itself for 3.x, and for Debian's 2.x a copy
// without the lines marked for Prometheus 3, beside the same rules and
// targets. On 2.x the file as shipped must be rejected (else the file's
// advice is stale).
func shippedConfig(t *testing.T, b upstream.Binary) string {
	t.Helper()
	shipped := filepath.Join(root, "prometheus", "prometheus.yml")
	if b.Current {
		return shipped
	}
	src, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	dropped := 0
	for _, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, prometheus3Only) && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			dropped++
			continue
		}
		kept = append(kept, l)
	}
	if dropped == 0 {
		t.Fatalf("prometheus.yml marks no line %q: what do Prometheus 2.x users delete?", prometheus3Only)
	}
	dir := t.TempDir()
	for _, d := range []string{"rules", "targets"} {
		if err := os.Symlink(filepath.Join(root, "prometheus", d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(out, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(b.Path, "promtool") {
		if msg, err := exec.Command(b.Path, "check", "config", shipped).CombinedOutput(); err == nil {
			t.Errorf("%s accepts prometheus.yml as shipped: the lines marked %q need no deleting there\n%s", b.Name, prometheus3Only, msg)
		}
	}
	return out
}

// prometheus3Globals returns the global settings prometheus/prometheus.yml
// marks for Prometheus 3, to scrape in tests as the shipped file does.
func prometheus3Globals(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, prometheus3Only) && strings.HasPrefix(l, "  ") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out.WriteString(l + "\n")
		}
	}
	if out.Len() == 0 {
		t.Fatalf("prometheus.yml has no global setting marked %q", prometheus3Only)
	}
	return out.String()
}

// checkNativeHistograms: scraped as prometheus.yml says, Prometheus 3 stores
// the RTT histogram both ways: native (a histogram sample) and classic
// (_bucket, _sum, _count, which the rules and dashboards read).
func checkNativeHistograms(t *testing.T, s *stack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.get(ctx, "/api/v1/query", url.Values{"query": {`smokemon_ping_rtt_seconds{node="bundle-test"}`}})
	if err != nil {
		t.Fatal(err)
	}
	native := 0
	for _, res := range r.Data.Result {
		if strings.Contains(string(res), `"histogram"`) {
			native++
		}
	}
	if native == 0 {
		t.Errorf("no native histogram smokemon_ping_rtt_seconds on Prometheus 3 with prometheus.yml's settings: %.300s", r.Data.Result)
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if n, err := s.query(`smokemon_ping_rtt_seconds`+suffix+`{node="bundle-test"}`, true); err != nil || n == 0 {
			t.Errorf("no classic smokemon_ping_rtt_seconds%s beside the native histogram (%v): the rules need it", suffix, err)
		}
	}
	t.Logf("native histograms: %d native smokemon_ping_rtt_seconds series, classic series present", native)
}

// The push hub's config loads on every Prometheus with the shipped rules and
// Alertmanager, and vmalert (the VictoriaMetrics hub) takes every rule file.
func TestHubConfigs(t *testing.T) {
	dir := filepath.Join(root, "prometheus")
	for _, promtool := range upstream.All(t, "promtool", "promtool") {
		out := run(t, dir, promtool.Path, "check", "config", "hub-remote-write.yml")
		if !strings.Contains(out, "rules found") {
			t.Errorf("%s: hub-remote-write.yml loads no rules:\n%s", promtool.Name, out)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "hub-remote-write.yml"))
	if !strings.Contains(string(b), "\nalerting:\n") {
		t.Error("hub-remote-write.yml sends no alerts to Alertmanager")
	}
	vmalert, err := upstream.Path("vmalert")
	if err != nil {
		t.Logf("UPSTREAM MISSING: %v: vmalert's dry run skipped", err)
		return
	}
	rules, _ := filepath.Glob(filepath.Join(dir, "rules", "*.yml"))
	args := []string{"-dryRun"}
	for _, r := range rules {
		args = append(args, "-rule="+r)
	}
	run(t, dir, append([]string{vmalert}, args...)...)
}
