package release

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/smokemon/smokemon/internal/upstream"
)

// installSh runs deploy/install.sh into a scratch root: never this machine's
// own services (with --root it makes no systemctl or package-manager call).
func installSh(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("sh", append([]string{filepath.Join(root, "deploy", "install.sh")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newRoot is a scratch root with just enough of /etc for useradd --root.
func newRoot(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	os.MkdirAll(filepath.Join(r, "etc"), 0o755)
	for name, content := range map[string]string{
		"passwd":  "root:x:0:0:root:/root:/bin/sh\n",
		"group":   "root:x:0:\nvideo:x:44:\n",
		"shadow":  "root:*:19000:0:99999:7:::\n",
		"gshadow": "root:*::\nvideo:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(r, "etc", name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// install.sh from a fresh root: the binary for this machine, units, config with
// the node name, push mode; a second run changes nothing (not even a file's
// time); a new node name changes one line; --uninstall leaves the root as it was.
func TestInstallScriptIdempotentInScratchRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("useradd --root needs root")
	}
	d := dist(t)
	r := newRoot(t)
	pristine := snapshot(t, false, nil, r)
	url := "http://198.18.10.2:9090/api/v1/write"
	secret := filepath.Join(t.TempDir(), "pi-test.password")
	os.WriteFile(secret, []byte("s3cret-pi-test\n"), 0o600)
	args := []string{"--root", r, "--from", d, "--node-name", "pi-test", "--remote-write", url, "--password-file", secret}

	out := installSh(t, args...)
	t.Logf("first run:\n%s", out)
	first := snapshot(t, true, nil, r)

	// The binary for this machine's architecture (detected, not given).
	f, err := elf.Open(filepath.Join(r, "usr/bin/smokemon_exporter"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}[runtime.GOARCH]
	if f.Machine != want {
		t.Errorf("installed binary is %v, want %v for this machine", f.Machine, want)
	}
	f.Close()
	for _, p := range []string{
		"usr/lib/systemd/system/smokemon_exporter.service",
		"usr/lib/systemd/system/smokemon_agent.service",
		"etc/default/smokemon_exporter",
		"etc/systemd/system/multi-user.target.wants/smokemon_exporter.service",
		"etc/systemd/system/multi-user.target.wants/smokemon_agent.service",
	} {
		if _, err := os.Lstat(filepath.Join(r, p)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	cfg := filepath.Join(r, "etc/smokemon/smokemon.yml")
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "\n  node_name: \"pi-test\"\n") {
		t.Errorf("node name not set:\n%s", b)
	}
	run(t, filepath.Join(r, "usr/bin/smokemon_exporter"), "--config.file="+cfg, "--config.check")
	agent := filepath.Join(r, "etc/smokemon/agent.yml")
	b, _ := os.ReadFile(agent)
	for _, want := range []string{"    node: pi-test ", "  - url: " + url + " ",
		"\n    basic_auth: {username: pi-test, password_file: /etc/smokemon/remote-write.password}"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("agent.yml lacks %q:\n%s", want, b)
		}
	}
	checkPasswordFile(t, r, "s3cret-pi-test\n")
	for _, promtool := range upstream.All(t, "promtool", "promtool") {
		run(t, promtool.Path, "check", "config", "--agent", agent)
	}
	pw, _ := os.ReadFile(filepath.Join(r, "etc/passwd"))
	if !strings.Contains(string(pw), "\nsmokemon:x:") {
		t.Errorf("no smokemon user in the root's /etc/passwd:\n%s", pw)
	}
	if g, _ := os.ReadFile(filepath.Join(r, "etc/group")); !strings.Contains(string(g), "video:x:44:smokemon\n") {
		t.Errorf("smokemon not in group video:\n%s", g)
	}

	// Idempotent: nothing changes on disk, and it says so.
	out = installSh(t, args...)
	if diff := diffSnapshots(first, snapshot(t, true, nil, r)); len(diff) > 0 {
		t.Errorf("second run changed the root:\n%s", strings.Join(diff, "\n"))
	}
	if !strings.Contains(out, "nothing changed") {
		t.Errorf("second run output:\n%s", out)
	}

	// A new node name: the config and the agent's label and user, nothing
	// else; without --password-file the node keeps its password.
	installSh(t, "--root", r, "--from", d, "--node-name", "pi-renamed", "--remote-write", url)
	diff := diffSnapshots(first, snapshot(t, true, nil, r))
	if len(diff) != 2 || !strings.Contains(strings.Join(diff, " "), "smokemon.yml") || !strings.Contains(strings.Join(diff, " "), "agent.yml") {
		t.Errorf("renaming changed:\n%s", strings.Join(diff, "\n"))
	}
	if b, _ := os.ReadFile(agent); !strings.Contains(string(b), "\n    basic_auth: {username: pi-renamed, password_file: /etc/smokemon/remote-write.password}") {
		t.Errorf("renamed agent.yml lost its credentials:\n%s", b)
	}
	checkPasswordFile(t, r, "s3cret-pi-test\n")

	// Uninstall: back to the pristine root.
	installSh(t, "--root", r, "--uninstall")
	// useradd's own backups and lock file aside.
	skip := func(p string) bool { return strings.HasSuffix(p, "-") || strings.HasSuffix(p, ".pwd.lock") }
	if diff := diffSnapshots(pristine, snapshot(t, false, skip, r)); len(diff) > 0 {
		t.Errorf("--uninstall left:\n%s", strings.Join(diff, "\n"))
	}
}

// checkPasswordFile: the node's remote-write password, readable by root and
// the smokemon group (the agent) only.
func checkPasswordFile(t *testing.T, r, want string) {
	t.Helper()
	p := filepath.Join(r, "etc/smokemon/remote-write.password")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	group, _ := os.ReadFile(filepath.Join(r, "etc/group"))
	gid := ""
	for _, l := range strings.Split(string(group), "\n") {
		if f := strings.Split(l, ":"); len(f) > 2 && f[0] == "smokemon" {
			gid = f[2]
		}
	}
	st := fi.Sys().(*syscall.Stat_t)
	if string(b) != want || fi.Mode().Perm() != 0o640 || st.Uid != 0 || fmt.Sprint(st.Gid) != gid {
		t.Errorf("remote-write.password: %q mode %v owner %d:%d; want %q, 0640, 0:%s (smokemon)", b, fi.Mode().Perm(), st.Uid, st.Gid, want, gid)
	}
}

// An explicit architecture installs that binary; bad options are refused
// with a reason before anything is touched.
func TestInstallScriptArchAndErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("useradd --root needs root")
	}
	d := dist(t)
	r := newRoot(t)
	installSh(t, "--root", r, "--from", d, "--arch", "arm64")
	f, err := elf.Open(filepath.Join(r, "usr/bin/smokemon_exporter"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("--arch arm64 installed %v", f.Machine)
	}
	f.Close()

	empty := newRoot(t)
	before := snapshot(t, true, nil, empty)
	for _, c := range []struct{ args, msg string }{
		{"--node-name bad/name", "--node-name"},
		{"--remote-write ftp://hub/", "not an http(s) URL"},
		{"--arch sparc", "--arch sparc"},
		{"--bogus", "unknown option"},
		{"--password-file /nonexistent --remote-write http://hub:9090/api/v1/write", "--password-file /nonexistent"},
		{"--password-file /etc/hostname", "only with --remote-write"},
	} {
		cmd := exec.Command("sh", append([]string{filepath.Join(root, "deploy", "install.sh"), "--root", empty, "--from", d}, strings.Fields(c.args)...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.msg) {
			t.Errorf("install.sh %s: err %v, output %q; want an error naming %q", c.args, err, out, c.msg)
		}
	}
	if diff := diffSnapshots(before, snapshot(t, true, nil, empty)); len(diff) > 0 {
		t.Errorf("refused runs changed the root:\n%s", strings.Join(diff, "\n"))
	}
}
