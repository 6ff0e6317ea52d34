package main

// The config that protects the user, end to end: an empty config refused at
// start, on --config.check and on reload (or taken with one warning under
// --config.allow-empty), the size limits, syntax errors at the right line,
// and the ping_group_range hint of a refused datagram socket.

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

func TestEmptyConfigRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty.yml", "# targets to come\n")
	for _, args := range [][]string{
		{"--config.file=" + empty, "--config.check"},
		{"--config.file=" + empty, "--web.listen-address=" + testutil.FreeAddr(t)},
	} {
		out, err := exec.Command(exporterBin(t), args...).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), empty+": no targets:") || !strings.Contains(string(out), "--config.allow-empty") {
			t.Errorf("%v: exit %d, output:\n%s", args, code, out)
		}
	}
	out, err := exec.Command(exporterBin(t), "--config.file="+empty, "--config.check", "--config.allow-empty").CombinedOutput()
	if err != nil || strings.Count(string(out), "level=WARN") != 1 || !strings.Contains(string(out), "NO TARGETS") {
		t.Errorf("--config.allow-empty --config.check: %v, output:\n%s", err, out)
	}
	// Quick-start hosts fill an empty file; the embedded default is not empty.
	for _, args := range [][]string{{"--config.file=" + empty, "198.18.0.1"}, {}} {
		out, err := exec.Command(exporterBin(t), append(args, "--config.check")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "configuration OK") {
			t.Errorf("%v: %v, output:\n%s", args, err, out)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// A reload to a config without targets keeps the running one, through
// SIGHUP and POST /-/reload; with --config.allow-empty it applies, warning.
func TestReloadToEmptyConfig(t *testing.T) {
	dir := t.TempDir()
	good := "global: {interval: 100ms}\nping:\n  targets:\n    - {host: 127.0.3.1, name: one}\n"
	cfg := writeFile(t, dir, "c.yml", good)
	e := start(t, "--config.file="+cfg)
	testutil.WaitFor(t, 5*time.Second, "target one probed", func() bool {
		return sample(e.scrape(t), `smokemon_ping_sent_total{family="ip4",target="one"}`) >= 2
	})
	writeFile(t, dir, "c.yml", "")
	e.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 5*time.Second, "the SIGHUP reload refused", func() bool {
		return sample(e.scrape(t), "smokemon_exporter_config_last_reload_successful") == 0
	})
	before := sample(e.scrape(t), `smokemon_ping_sent_total{family="ip4",target="one"}`)
	resp, err := e.client.Post(e.base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(msg), cfg+": no targets:") {
		t.Errorf("POST /-/reload of an empty file: %s: %s", resp.Status, msg)
	}
	testutil.WaitFor(t, 5*time.Second, "target one still probed", func() bool {
		return sample(e.scrape(t), `smokemon_ping_sent_total{family="ip4",target="one"}`) > before
	})
	if !strings.Contains(e.out.String(), "reload failed; the running configuration stays in force") {
		t.Errorf("no reload failure logged:\n%s", e.out)
	}

	writeFile(t, dir, "c.yml", good)
	e = start(t, "--config.file="+cfg, "--config.allow-empty")
	writeFile(t, dir, "c.yml", "")
	resp, err = e.client.Post(e.base+"/-/reload", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /-/reload with --config.allow-empty: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	testutil.WaitFor(t, 5*time.Second, "target one dropped", func() bool {
		return !strings.Contains(e.scrape(t), `target="one"`)
	})
	if n := strings.Count(e.out.String(), "NO TARGETS"); n != 1 {
		t.Errorf("%d warnings about the empty config, want 1:\n%s", n, e.out)
	}
}

func TestConfigLimitsAndSyntaxLine(t *testing.T) {
	dir := t.TempDir()
	big := writeFile(t, dir, "big.yml", "ping:\n  targets:\n    - host: 198.18.0.1\n"+strings.Repeat("# padding\n", 120000))
	var many strings.Builder
	many.WriteString("ping:\n  targets:\n")
	for i := range 10001 {
		fmt.Fprintf(&many, "    - host: t%d.test\n", i)
	}
	for _, tc := range []struct{ content, want string }{
		{"", big + ": the config file is 1.1 MiB (1200040 bytes), over the limit of 1 MiB (1048576 bytes)"},
		{many.String(), "many.yml:10003: ping.targets[10000]: ping.targets has more than 10000 entries"},
		{"ping:\n  targets:\n    - host: 198.18.0.1\n    - host: 198.18.0.2\n   - host: 198.18.0.3\n", `bad.yml:5: did not find expected key: "   - host: 198.18.0.3"`},
	} {
		f := big
		switch {
		case strings.HasPrefix(tc.want, "many"):
			f = writeFile(t, dir, "many.yml", tc.content)
		case strings.HasPrefix(tc.want, "bad"):
			f = writeFile(t, dir, "bad.yml", tc.content)
		}
		out, err := exec.Command(exporterBin(t), "--config.file="+f, "--config.check").CombinedOutput()
		if exitCode(err) != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %v, output:\n%s\nwant %s", f, err, out, tc.want)
		}
	}
}

// --ping.socket=dgram refused by ping_group_range: the log says which range
// is in force, the process's group and the sysctl that allows it.
func TestDgramRefusedHint(t *testing.T) {
	lab.Require(t)
	h := lab.New(t).Host("nogroup")
	h.Sysctl("net.ipv4.ping_group_range", "1 0")
	var out syncBuffer
	cmd := exec.Command("ip", "netns", "exec", h.Name(), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		exporterBin(t), "--web.listen-address=127.0.0.1:9917", "--ping.socket=dgram",
		"--collector.disable-defaults", "--collector.ping", "127.0.0.1")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	want := []string{
		"permission denied",
		`ping_group_range (/proc/sys/net/ipv4/ping_group_range), which is \"1 0\", which allows no group`,
		"this process runs as group 65534",
		`sysctl -w net.ipv4.ping_group_range=\"65534 65534\"`,
	}
	ok := testutil.Eventually(10*time.Second, 50*time.Millisecond, func() bool {
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Errorf("the log lacks the ping_group_range hint (%q):\n%s", want, out.String())
	}
}
