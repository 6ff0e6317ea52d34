package release

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// snapshot maps every path under the roots to its type, mode, owner and
// content hash (link target for symlinks); withTimes adds the modification time.
func snapshot(t *testing.T, withTimes bool, skip func(string) bool, roots ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, r := range roots {
		filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err != nil || (skip != nil && skip(p)) {
				return nil
			}
			info, err := os.Lstat(p)
			if err != nil {
				return nil
			}
			v := info.Mode().String()
			if st, ok := info.Sys().(interface{ Uid() uint32 }); ok {
				v += fmt.Sprint(" uid ", st.Uid())
			}
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				v += " -> " + target
			case info.Mode().IsRegular():
				b, _ := os.ReadFile(p)
				sum := sha256.Sum256(b)
				v += " " + hex.EncodeToString(sum[:8])
			}
			if withTimes && !info.IsDir() {
				v += " " + info.ModTime().String()
			}
			m[p] = v
			return nil
		})
	}
	return m
}

func diffSnapshots(before, after map[string]string) []string {
	var d []string
	for p, v := range before {
		if w, ok := after[p]; !ok {
			d = append(d, "gone: "+p)
		} else if v != w {
			d = append(d, "changed: "+p+" ("+v+" -> "+w+")")
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			d = append(d, "new: "+p)
		}
	}
	return d
}

// The .deb on this very machine: install, check, upgrade over an edited
// conffile, remove, purge, and the machine is as it was. It changes the
// machine, so it runs only as root and when asked (SMOKEMON_TEST_DPKG=1), or in
// CI (CI=true), whose machine is thrown away.
func TestDebInstallUpgradeRemovePurge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs a package on this machine: needs root")
	}
	if os.Getenv("SMOKEMON_TEST_DPKG") != "1" && os.Getenv("CI") != "true" {
		t.Skip("installs a package on this machine: set SMOKEMON_TEST_DPKG=1 (CI=true does it in CI)")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("no dpkg")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "smokemon-exporter").Output(); err == nil && strings.TrimSpace(string(out)) != "" && !strings.HasPrefix(string(out), "un") {
		t.Skipf("smokemon-exporter is already on this machine (%s): not touching it", strings.TrimSpace(string(out)))
	}
	d := dist(t)
	arch := strings.TrimSpace(run(t, "dpkg", "--print-architecture"))
	deb := filepath.Join(d, "smokemon-exporter_0.9.0+test-1_"+arch+".deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatal(err)
	}

	// What a purge must restore. useradd's backup files (/etc/passwd- ...) and
	// lock are its own business.
	skip := func(p string) bool {
		if strings.HasPrefix(p, "/usr/bin/") && !strings.HasPrefix(p, "/usr/bin/smokemon") {
			return true // other packages' programs, which other tests may install meanwhile
		}
		return strings.HasSuffix(p, "-") || strings.HasSuffix(p, ".pwd.lock") || p == "/etc/ld.so.cache"
	}
	watched := []string{"/etc", "/usr/bin", "/usr/lib/systemd", "/usr/share/smokemon", "/usr/share/doc/smokemon-exporter",
		"/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked", "/var/lib/smokemon-agent"}
	before := snapshot(t, false, skip, watched...)
	t.Cleanup(func() {
		// Never leave the package behind, whatever failed.
		exec.Command("dpkg", "-P", "smokemon-exporter").Run()
	})

	run(t, "dpkg", "-i", deb)
	checkInstalled(t)
	checkSystemUser(t)
	checkUnits(t)
	checkUpgradeKeepsEdit(t, d, arch)
	checkRemoveKeepsConffiles(t)

	// Purge: the machine is as it was, user included.
	run(t, "dpkg", "-P", "smokemon-exporter")
	if out, err := exec.Command("getent", "passwd", "smokemon").Output(); err == nil {
		t.Errorf("user still there after purge: %s", out)
	}
	if diff := diffSnapshots(before, snapshot(t, false, skip, watched...)); len(diff) > 0 {
		t.Errorf("purge left the machine changed:\n%s", strings.Join(diff, "\n"))
	}
}

// checkInstalled: the status, the files and their modes, the conffiles, and a
// program that runs.
func checkInstalled(t *testing.T) {
	t.Helper()
	if s := run(t, "dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", "smokemon-exporter"); s != "ii 0.9.0+test-1" {
		t.Errorf("status after install: %q", s)
	}
	for p, mode := range map[string]os.FileMode{
		"/usr/bin/smokemon_exporter":                        0o755,
		"/usr/lib/systemd/system/smokemon_exporter.service": 0o644,
		"/usr/lib/systemd/system/smokemon_agent.service":    0o644,
		"/etc/smokemon/smokemon.yml":                        0o644,
		"/etc/default/smokemon_exporter":                    0o644,
		"/usr/share/smokemon/agent.yml":                     0o644,
	} {
		if st, err := os.Stat(p); err != nil {
			t.Errorf("%v", err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), mode)
		}
	}
	conffiles := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "smokemon-exporter")
	for _, c := range []string{"/etc/smokemon/smokemon.yml", "/etc/default/smokemon_exporter"} {
		if !strings.Contains(conffiles, c+" ") {
			t.Errorf("%s is not a conffile:\n%s", c, conffiles)
		}
	}
	if v := run(t, "/usr/bin/smokemon_exporter", "--version"); !strings.Contains(v, testVersion) {
		t.Errorf("--version: %s", v)
	}
	run(t, "/usr/bin/smokemon_exporter", "--config.file=/etc/smokemon/smokemon.yml", "--config.check")
}

// checkSystemUser: no login, no home, a uid in the system range.
func checkSystemUser(t *testing.T) {
	t.Helper()
	pw := strings.Split(strings.TrimSpace(run(t, "getent", "passwd", "smokemon")), ":")
	if len(pw) != 7 || pw[6] != "/usr/sbin/nologin" || pw[5] != "/nonexistent" {
		t.Errorf("smokemon user: %v", pw)
	} else if uid := pw[2]; len(uid) > 3 {
		t.Errorf("smokemon uid %s: not a system user", uid)
	}
	run(t, "getent", "group", "smokemon")
}

// checkUnits: hardening present, enabled at boot, and valid to systemd.
func checkUnits(t *testing.T) {
	t.Helper()
	unit, _ := os.ReadFile("/usr/lib/systemd/system/smokemon_exporter.service")
	for _, want := range []string{"User=smokemon", "AmbientCapabilities=CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_RAW",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("smokemon_exporter.service lacks %s", want)
		}
	}
	wants := "/etc/systemd/system/multi-user.target.wants/smokemon_exporter.service"
	if target, err := os.Readlink(wants); err != nil || !strings.HasSuffix(target, "/smokemon_exporter.service") {
		t.Errorf("not enabled at boot: %s -> %q (%v)", wants, target, err)
	}
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/smokemon_agent.service"); err == nil {
		t.Errorf("push mode enabled by the package; only install.sh --remote-write should")
	}
	if sa, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: units not verified")
	} else {
		for _, u := range []string{"smokemon_exporter.service", "smokemon_agent.service"} {
			out, err := exec.Command(sa, "verify", "/usr/lib/systemd/system/"+u).CombinedOutput()
			if err != nil || strings.Contains(string(out), u) {
				t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
			}
		}
	}
}

// checkUpgradeKeepsEdit: an upgrade keeps the administrator's edit of a conffile.
func checkUpgradeKeepsEdit(t *testing.T, d, arch string) {
	t.Helper()
	edited := "# edited by the administrator\n"
	f, _ := os.OpenFile("/etc/smokemon/smokemon.yml", os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(edited)
	f.Close()
	up := t.TempDir()
	cmd := exec.Command("go", "tool", "nfpm", "pkg", "--config", "deploy/nfpm/smokemon_exporter.yaml", "--packager", "deb", "--target", up+"/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SMOKEMON_BIN="+filepath.Join(d, "linux-"+debGoArch(arch)), "SMOKEMON_VERSION=0.9.1", "NFPM_ARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nfpm (upgrade package): %v\n%s", err, out)
	}
	run(t, "dpkg", "--force-confold", "-i", filepath.Join(up, "smokemon-exporter_0.9.1-1_"+arch+".deb"))
	if s := run(t, "dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", "smokemon-exporter"); s != "ii 0.9.1-1" {
		t.Errorf("status after upgrade: %q", s)
	}
	if b, _ := os.ReadFile("/etc/smokemon/smokemon.yml"); !strings.HasSuffix(string(b), edited) {
		t.Errorf("the upgrade lost the edit of /etc/smokemon/smokemon.yml:\n%s", b)
	}
}

// checkRemoveKeepsConffiles: dpkg -r takes the program and units; the
// conffiles and the user stay (until purge).
func checkRemoveKeepsConffiles(t *testing.T) {
	t.Helper()
	run(t, "dpkg", "-r", "smokemon-exporter")
	for _, p := range []string{"/usr/bin/smokemon_exporter", "/usr/lib/systemd/system/smokemon_exporter.service"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still there after dpkg -r", p)
		}
	}
	if _, err := os.Stat("/etc/smokemon/smokemon.yml"); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
	run(t, "getent", "passwd", "smokemon")
}

func debGoArch(debArch string) string {
	switch debArch {
	case "armhf":
		return "armv6"
	}
	return debArch
}
