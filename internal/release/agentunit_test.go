package release

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/internal/upstream"
)

// TestAgentUnitOnEveryPrometheus runs the shipped smokemon_agent.service's
// ExecStart line, as systemd would hand it to /bin/sh, on Debian's Prometheus
// 2.42 and on the current 3.x: a node may have either as /usr/bin/prometheus,
// and they spell agent mode differently (--enable-feature=agent, --agent).
// With the wrong spelling 2.x refuses to start and 3.x starts as a full
// server, so the test asks for agent mode's signature: ready, and no query API.
func TestAgentUnitOnEveryPrometheus(t *testing.T) {
	script := agentUnitScript(t)
	for _, prom := range upstream.All(t, "prometheus", "prometheus") {
		t.Run(prom.Name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "agent.yml")
			// Nothing to scrape; the remote-write end is a closed loopback port.
			os.WriteFile(cfg, []byte("scrape_configs: []\nremote_write: [{url: 'http://127.0.0.1:1/api/v1/write'}]\n"), 0o644)
			addr := testutil.FreeAddr(t)
			// Quoted: the test's temporary paths hold the subtest's name.
			q := func(p string) string { return "'" + p + "'" }
			s := strings.NewReplacer(
				"/usr/bin/prometheus", q(prom.Path),
				"/etc/smokemon/agent.yml", q(cfg),
				"/var/lib/smokemon-agent", q(filepath.Join(dir, "wal")),
				"127.0.0.1:9918", addr,
			).Replace(script)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s)
			log, err := os.Create(filepath.Join(dir, "log"))
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			cmd.Stdout, cmd.Stderr = log, log
			output := func() string { b, _ := os.ReadFile(log.Name()); return string(b) }
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			client := &http.Client{Timeout: 2 * time.Second}
			status := func(path string) int {
				resp, err := client.Get("http://" + addr + path)
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			ready := testutil.Eventually(30*time.Second, 200*time.Millisecond, func() bool {
				select {
				case err := <-exited:
					t.Fatalf("the unit's command exited (%v):\n%s", err, output())
				default:
				}
				return status("/-/ready") == http.StatusOK
			})
			if !ready {
				t.Fatalf("not ready within 30 s:\n%s", output())
			}
			if code := status("/api/v1/query?query=1"); code == http.StatusOK {
				t.Fatalf("the query API answers 200: Prometheus runs as a server, not in agent mode:\n%s", output())
			}
		})
	}
}

// agentUnitScript returns the shell script of the unit's ExecStart
// (/bin/sh -c '…'), with systemd's line continuations and escapes undone.
func agentUnitScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", "smokemon_agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, l := range strings.Split(unit, "\n") {
		v, ok := strings.CutPrefix(l, "ExecStart=")
		if !ok {
			continue
		}
		v, ok = strings.CutPrefix(v, "/bin/sh -c '")
		if !ok || !strings.HasSuffix(v, "'") {
			t.Fatalf("ExecStart is not /bin/sh -c '…': %s", l)
		}
		v = strings.TrimSuffix(v, "'")
		return strings.NewReplacer("$$", "$", `\\`, `\`).Replace(v)
	}
	t.Fatal("smokemon_agent.service has no ExecStart")
	return ""
}
