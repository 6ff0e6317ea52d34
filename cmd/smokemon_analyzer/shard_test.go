package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/analyzer"
	"github.com/smokemon/smokemon/internal/testutil"
)

// Two serving shards of the test fleet: each exports its shard and node
// count, together they hold both nodes once, and shard 0 reads shard 1's
// incidents over HTTP (--shard.peer) without error.
func TestServeShards(t *testing.T) {
	bin := analyzerBin(t)
	addrs := []string{testutil.FreeAddr(t), testutil.FreeAddr(t)}
	for i := 1; i >= 0; i-- {
		args := []string{"--prometheus.url=" + promURL, "--evaluation-interval=5s", "--shard.count=2", "--shard.index=" + strconv.Itoa(i)}
		if i == 0 {
			args = append(args, "--shard.peer=http://"+addrs[1])
		}
		cmd := exec.Command(bin, append(args, "serve", "--web.listen-address="+addrs[i])...)
		var logs bytes.Buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait(); t.Logf("shard %d:\n%s", i, logs.String()) }()
		if i == 1 {
			// Until its first cycle a peer answers 503, which shard 0 rightly
			// counts as a fleet_peers error: start shard 0 once it serves.
			testutil.WaitFor(t, 30*time.Second, "shard 1 serving incidents", func() bool {
				resp, err := http.Get("http://" + addrs[1] + "/api/v1/incidents?active=true")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		}
	}
	metrics := make([]string, 2)
	testutil.WaitFor(t, 60*time.Second, "both shards warmed up", func() bool {
		for i, a := range addrs {
			resp, err := http.Get("http://" + a + "/metrics")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics[i] = string(b)
			if !strings.Contains(metrics[i], "smokemon_analyzer_window_covered_seconds 3600") {
				return false
			}
		}
		return true
	})
	nodes := regexp.MustCompile(`(?m)^smokemon_analyzer_node_health_info\{health="[a-z]+",node="([^"]+)"\} 1$`)
	seen := map[string]int{}
	for i, m := range metrics {
		if want := `smokemon_analyzer_shard_info{count="2",index="` + strconv.Itoa(i) + `"} 1`; !strings.Contains(m, want) {
			t.Errorf("shard %d lacks %s", i, want)
		}
		found := nodes.FindAllStringSubmatch(m, -1)
		if !strings.Contains(m, "smokemon_analyzer_shard_nodes "+strconv.Itoa(len(found))+"\n") {
			t.Errorf("shard %d: smokemon_analyzer_shard_nodes is not its %d nodes", i, len(found))
		}
		for _, f := range found {
			seen[f[1]]++
			if s := analyzer.ShardOf(f[1], 2); s != i {
				t.Errorf("shard %d analyses %s of shard %d", i, f[1], s)
			}
		}
		if strings.Contains(m, `query_errors_total{query="fleet_peers"}`) {
			t.Errorf("shard %d: the peer's incidents could not be read", i)
		}
	}
	if len(seen) != 2 || seen["pi-kitchen"] != 1 || seen["pi-attic"] != 1 {
		t.Errorf("nodes over both shards: %v, want pi-kitchen and pi-attic once each", seen)
	}
	// A one-shot shard 0 reads the same peer, and names one that does not answer.
	at := "--at=" + evalAt.Format(time.RFC3339)
	for peer, fails := range map[string]bool{"http://" + addrs[1]: false, "http://" + testutil.FreeAddr(t): true} {
		_, stderr, err := analyzerCmd(t, "--prometheus.url="+promURL, at, "--shard.count=2", "--shard.index=0", "--shard.peer="+peer, "status")
		if err != nil || strings.Contains(stderr, "fleet_peers") != fails {
			t.Errorf("status with peer %s: err %v, stderr %q; want a fleet_peers warning: %v", peer, err, stderr, fails)
		}
	}
	// The peer's JSON decodes into what shard 0 groups.
	resp, err := http.Get("http://" + addrs[1] + "/api/v1/incidents?active=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["warming_up"] != false {
		t.Errorf("shard 1's incidents: %v (%v)", body, err)
	}
}
