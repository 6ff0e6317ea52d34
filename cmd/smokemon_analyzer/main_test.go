package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/analyzer/scenario"
	"github.com/smokemon/smokemon/internal/testutil"
)

// End-to-end tests of the real binary against a real Prometheus holding a
// small synthetic fleet: one node losing 30% to 1.1.1.1 while its wifi
// retries jump, one clean node.

var (
	promURL string
	fault   time.Time
	evalAt  time.Time
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// analyzerBin is the binary under test, built once per test process.
func analyzerBin(t *testing.T) string { return testutil.BuildBinary(t, ".") }

func testMain(m *testing.M) int {
	if _, err := exec.LookPath("prometheus"); err != nil {
		fmt.Fprintln(os.Stderr, "skipping: no prometheus binary")
		return 0
	}
	dir, err := os.MkdirTemp("", "analyzer-cmd-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	now := time.Now()
	evalAt = now.Truncate(time.Minute)
	fault = evalAt.Add(-20 * time.Minute)
	after := func(t time.Time) bool { return !t.Before(fault) }
	loss := scenario.Node{Name: "pi-kitchen", Targets: []string{"gateway", "1.1.1.1"}, Start: evalAt.Add(-2 * time.Hour),
		Loss: func(tg string, t time.Time) float64 {
			if tg == "1.1.1.1" && after(t) {
				return 0.3
			}
			return 0
		},
		MTR: func(tg string, t time.Time) []scenario.Hop {
			h := []scenario.Hop{{RTT: 0.001}, {RTT: 0.01}, {RTT: 0.02}}
			if tg == "1.1.1.1" && after(t) {
				h[1].Loss, h[2].Loss = 0.3, 0.3
			}
			return h
		},
		// The node's own download floods the uplink (the gateway stays fine).
		Host: func(t time.Time, h *scenario.Host) {
			if after(t) {
				h.RxBytes = 5e6
			}
		}}
	clean := scenario.Node{Name: "pi-attic", Targets: []string{"gateway", "1.1.1.1"}, Start: evalAt.Add(-2 * time.Hour)}
	// Data runs 10 minutes past now so that `serve`, which evaluates at the
	// wall clock, sees complete windows for the length of the test.
	g := &scenario.Gen{End: now.Add(10 * time.Minute), Seed: 7}
	om := filepath.Join(dir, "fleet.om")
	if err := g.WriteFile(om, []scenario.Node{loss, clean}); err != nil {
		panic(err)
	}
	if err := scenario.Backfill(om, filepath.Join(dir, "tsdb")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := scenario.StartPrometheus(filepath.Join(dir, "tsdb"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	promURL = srv.URL
	return testutil.Run(m)
}

func analyzerCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	bin := analyzerBin(t) // built before the command's minute starts
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func TestStatusAndIncidents(t *testing.T) {
	at := "--at=" + evalAt.Format(time.RFC3339)
	out, stderr, err := analyzerCmd(t, "--prometheus.url="+promURL, at, "status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	t.Logf("status:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "pi-attic") || !strings.Contains(lines[0], " ok ") ||
		!strings.Contains(lines[1], "degraded") || !strings.Contains(lines[1], "worst 1.1.1.1") {
		t.Errorf("status lines:\n%s\nwant pi-attic ok, pi-kitchen degraded with worst target 1.1.1.1", out)
	}
	out, stderr, err = analyzerCmd(t, "--prometheus.url="+promURL, at, "incidents", "--since=1h", "--json")
	if err != nil {
		t.Fatalf("incidents: %v\n%s", err, stderr)
	}
	var incs []map[string]any
	if err := json.Unmarshal([]byte(out), &incs); err != nil {
		t.Fatalf("incidents JSON: %v\n%s", err, out)
	}
	if len(incs) != 1 || incs[0]["kind"] != "packet-loss" || incs[0]["node"] != "pi-kitchen" || incs[0]["target"] != "1.1.1.1" {
		t.Fatalf("incidents: %s", out)
	}
	start, _ := time.Parse(time.RFC3339, incs[0]["start"].(string))
	if d := start.Sub(fault); d < -30*time.Second || d > 30*time.Second {
		t.Errorf("start %v, fault at %v", start, fault)
	}
}

// digest --notify posts to ntfy (plain text, Title header) and to Slack
// (JSON text): a local server records what would have been sent.
func TestDigestNotify(t *testing.T) {
	type post struct {
		ctype, title, body string
	}
	var mu sync.Mutex
	var posts []post
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, post{r.Header.Get("Content-Type"), r.Header.Get("Title"), string(b)})
		mu.Unlock()
	}))
	defer rec.Close()
	at := "--at=" + evalAt.Format(time.RFC3339)
	for _, kind := range []string{"ntfy", "slack"} {
		out, stderr, err := analyzerCmd(t, "--prometheus.url="+promURL, at, "digest", "--since=2h", "--notify="+rec.URL+"/smokemon", "--notify.kind="+kind)
		if err != nil {
			t.Fatalf("digest: %v\n%s", err, stderr)
		}
		t.Logf("digest:\n%s", out)
		var pct int
		if m := regexp.MustCompile(`pi-kitchen lost (\d+)% to 1\.1\.1\.1 since`).FindStringSubmatch(out); m != nil {
			pct, _ = strconv.Atoi(m[1])
		}
		if pct < 25 || pct > 35 || !strings.Contains(out, "loss starts at hop 2") || !strings.Contains(out, "download on eth0 rose") ||
			!strings.Contains(out, "likely this node's own download") || strings.Contains(out, "pi-attic") {
			t.Errorf("digest does not tell the story (30%% loss from hop 2, the node's own download):\n%s", out)
		}
	}
	if len(posts) != 2 {
		t.Fatalf("%d posts, want 2", len(posts))
	}
	if posts[0].title != "smokemon digest" || !strings.Contains(posts[0].body, "own download") {
		t.Errorf("ntfy post %+v", posts[0])
	}
	var slack map[string]string
	if err := json.Unmarshal([]byte(posts[1].body), &slack); err != nil || posts[1].ctype != "application/json" || !strings.Contains(slack["text"], "own download") {
		t.Errorf("slack post %+v (%v)", posts[1], err)
	}
}

// serve behind an authenticating proxy (bearer token + tenant header, as
// Mimir wants): the JSON API and /metrics answer from a real cycle.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	target, _ := url.Parse(promURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var denied int
	var mu sync.Mutex
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("X-Scope-OrgID") != "home" {
			mu.Lock()
			denied++
			mu.Unlock()
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer gate.Close()

	// Without credentials: blind, exit 1.
	if _, stderr, err := analyzerCmd(t, "--prometheus.url="+gate.URL, "status"); err == nil || !strings.Contains(stderr, "blind") {
		t.Errorf("status without credentials: err=%v stderr=%s, want a blind failure", err, stderr)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(analyzerBin(t), "--prometheus.url="+gate.URL, "--prometheus.bearer-token-file="+tokenFile,
		"--prometheus.header=X-Scope-OrgID=home", "--evaluation-interval=5s", "serve", "--web.listen-address="+addr)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var fleet map[string]any
	testutil.Eventually(30*time.Second, 200*time.Millisecond, func() bool {
		resp, err := http.Get("http://" + addr + "/api/v1/fleet")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return false
		}
		fleet = nil
		json.NewDecoder(resp.Body).Decode(&fleet)
		return fleet["warming_up"] == false // the cold start has read the whole window
	})
	if fleet == nil || fleet["up"] != true {
		t.Fatalf("fleet: %v\n%s", fleet, logs.String())
	}
	nodes, _ := fleet["nodes"].([]any)
	if len(nodes) != 2 {
		t.Fatalf("fleet nodes: %v", fleet["nodes"])
	}
	kitchen := nodes[1].(map[string]any)
	if kitchen["node"] != "pi-kitchen" || kitchen["health"] != "degraded" || math.Abs(kitchen["worst_loss_ratio"].(float64)-0.3) > 0.1 {
		t.Errorf("pi-kitchen fleet line: %v", kitchen)
	}
	resp, err := http.Get("http://" + addr + "/api/v1/incidents?active=true")
	if err != nil {
		t.Fatal(err)
	}
	var incs map[string]any
	json.NewDecoder(resp.Body).Decode(&incs)
	resp.Body.Close()
	list, _ := incs["incidents"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["origin_hop"] != 2.0 {
		t.Errorf("active incidents: %v", incs)
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`smokemon_analyzer_up 1`,
		`smokemon_analyzer_incident_active{kind="packet-loss",node="pi-kitchen",severity="critical",target="1.1.1.1"} 1`,
		`smokemon_analyzer_path_origin_hop{node="pi-kitchen",problem="loss",target="1.1.1.1"} 2`,
		`smokemon_analyzer_blame_score{kind="packet-loss",node="pi-kitchen",rank="1",signal="network_receive:eth0",target="1.1.1.1"}`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// A shard setting that cannot work is refused at start, naming the flag.
func TestShardFlags(t *testing.T) {
	for args, want := range map[string]string{
		"--shard.count=2 --shard.index=2": "shard.index=2",
		"--shard.count=0":                 "shard.count=0",
	} {
		_, stderr, err := analyzerCmd(t, append(strings.Fields(args), "--prometheus.url="+promURL, "status")...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(stderr, want) {
			t.Errorf("%s: err %v, stderr %q; want exit 2 naming %s", args, err, stderr, want)
		}
	}
}
