package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/internal/upstream"
)

// With --ping.histogram=native a target's RTT is one native histogram series
// in a Prometheus that scrapes native histograms (what the bundle's
// prometheus.yml sets), and histogram_quantile works on it; without
// scrape_native_histograms the same Prometheus keeps only _count, _sum and
// the +Inf bucket, which is why the mode is not the default.
func TestNativeOnlyHistogramIntoPrometheus(t *testing.T) {
	prom := upstream.Current(t, "prometheus", "prometheus")
	if !prom.Current {
		t.Skip("Debian's Prometheus 2.x has no scrape_native_histograms; needs the .ci/upstream build")
	}
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smokemon.yml", "global: {interval: 200ms, timeout: 200ms}\nping:\n  targets:\n    - host: 127.0.0.1\n    - host: 127.0.0.2\n")
	e := start(t, "--config.file="+cfg, "--collector.disable-defaults", "--collector.ping", "--ping.histogram=native")
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("scrape_native_histograms=%v", native), func(t *testing.T) {
			base := startPrometheus(t, prom.Path, strings.TrimPrefix(e.base, "http://"), native)
			want := "2" // one series per target
			if !native {
				want = "6" // _count, _sum and le="+Inf" per target
			}
			var got, last string
			ok := testutil.Eventually(60*time.Second, 500*time.Millisecond, func() bool {
				got = promQuery(t, base, `count({__name__=~"smokemon_ping_rtt_seconds.*"})`)
				last = promQuery(t, base, `histogram_quantile(0.5, rate(smokemon_ping_rtt_seconds{target="127.0.0.1"}[5s]))`)
				return got == want && (!native || (last != "" && last != "NaN"))
			})
			if !ok {
				t.Fatalf("series %q (want %s), native median %q", got, want, last)
			}
			if native {
				t.Logf("%s series; loopback median RTT from the native histogram: %s s", got, last)
			}
		})
	}
}

// startPrometheus runs Prometheus scraping target every 500 ms.
func startPrometheus(t *testing.T, bin, target string, native bool) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 500ms}\nscrape_configs:\n  - job_name: smokemon\n    scrape_native_histograms: %v\n    static_configs: [{targets: ['%s']}]\n", native, target)
	addr := testutil.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+writeFile(t, dir, "prometheus.yml", cfg),
		"--storage.tsdb.path="+dir+"/data", "--web.listen-address="+addr)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out)
		}
	})
	base := "http://" + addr
	testutil.WaitFor(t, 30*time.Second, "prometheus ready", func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

// promQuery returns the first sample's value of an instant query, "" when
// there is none.
func promQuery(t *testing.T, base, q string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) < 2 {
		return ""
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v
}
