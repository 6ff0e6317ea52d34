package release

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

// testVersion is what the release binaries report in smokemon_exporter_build_info
// and what the packages are versioned from (deploy/pkg-version: 0.9.0+test).
const testVersion = "v0.9.0-test"

// Size budgets in MiB, per binary and architecture: measured with every
// collector (exporter: amd64 15.3, arm64 14.3, armv7 14.6, armv6 14.7;
// analyzer: amd64 14.1, arm64 13.1, armv7 13.4) plus ~20% headroom. Over budget
// fails: a Pi Zero has 512 MB of RAM and slow flash.
var budgets = map[string]map[string]int64{
	"smokemon_exporter": {"amd64": 19, "arm64": 18, "armv7": 18, "armv6": 18},
	"smokemon_analyzer": {"amd64": 17, "arm64": 16, "armv7": 16, "armv6": 16},
}

// binaries are the commands `make release` builds: the analyzer once it exists.
func binaries(t *testing.T) []string {
	b := []string{"smokemon_exporter"}
	if m, _ := filepath.Glob(filepath.Join(root, "cmd", "smokemon_analyzer", "*.go")); len(m) > 0 {
		b = append(b, "smokemon_analyzer")
	}
	return b
}

var (
	root      string // the repository
	distDir   string // make packages output, shared by every test in this run
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	root = filepath.Join(wd, "..", "..")
	dir, err := os.MkdirTemp("", "smokemon-dist")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	distDir = filepath.Join(dir, "dist")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dist builds every release binary, tarball and package once per test run,
// through the Makefile (so the targets themselves are tested), and returns the
// directory. The shared GOCACHE makes a rerun mostly a relink.
func dist(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if _, err := exec.LookPath("make"); err != nil {
			buildErr = fmt.Errorf("make not installed")
			return
		}
		start := time.Now()
		cmd := exec.Command("make", "-C", root, "packages", "DIST="+distDir, "VERSION="+testVersion)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("make packages: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "release: make packages took %v\n", time.Since(start).Round(time.Second))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return distDir
}

var releaseArches = []struct {
	name, goarch, goarm string
	machine             elf.Machine
	class               elf.Class
}{
	{"amd64", "amd64", "", elf.EM_X86_64, elf.ELFCLASS64},
	{"arm64", "arm64", "", elf.EM_AARCH64, elf.ELFCLASS64},
	{"armv7", "arm", "7", elf.EM_ARM, elf.ELFCLASS32},
	{"armv6", "arm", "6", elf.EM_ARM, elf.ELFCLASS32},
}

// Every release binary is for its architecture, static, built without cgo and
// with the version ldflags, and within its size budget.
func TestReleaseBinaries(t *testing.T) {
	d := dist(t)
	for _, name := range binaries(t) {
		for _, a := range releaseArches {
			bin := filepath.Join(d, "linux-"+a.name, name)
			st, err := os.Stat(bin)
			if err != nil {
				t.Errorf("%s %s: %v", a.name, name, err)
				continue
			}
			budget := budgets[name][a.name] << 20
			t.Logf("%-5s %s %5.1f MiB (budget %d MiB)", a.name, name, float64(st.Size())/(1<<20), budget>>20)
			if st.Size() > budget {
				t.Errorf("%s %s: %d bytes, over the budget of %d", a.name, name, st.Size(), budget)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("%s: %v", a.name, err)
			}
			if f.Machine != a.machine || f.Class != a.class {
				t.Errorf("%s: ELF %v %v, want %v %v", a.name, f.Machine, f.Class, a.machine, a.class)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s: has a program interpreter: dynamically linked", a.name)
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("%s: needs shared libraries %v", a.name, libs)
			}
			f.Close()
			info, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatalf("%s: build info: %v", a.name, err)
			}
			want := map[string]string{"GOOS": "linux", "GOARCH": a.goarch, "CGO_ENABLED": "0", "-trimpath": "true"}
			if a.goarm != "" {
				want["GOARM"] = a.goarm
			}
			got := map[string]string{}
			for _, s := range info.Settings {
				got[s.Key] = s.Value
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: build setting %s=%q, want %q", a.name, k, got[k], v)
				}
			}
			// -trimpath keeps -ldflags out of the build info: look for the -X value.
			if b, _ := os.ReadFile(bin); !bytes.Contains(b, []byte(testVersion)) {
				t.Errorf("%s: the version %q (Makefile ldflags) is not in the binary", a.name, testVersion)
			}
		}
	}
	// A .deb and an .rpm per package and architecture.
	for _, name := range binaries(t) {
		pkg := strings.ReplaceAll(name, "_", "-")
		for _, f := range []string{
			pkg + "_0.9.0+test-1_amd64.deb", pkg + "_0.9.0+test-1_arm64.deb", pkg + "_0.9.0+test-1_armhf.deb",
			pkg + "-0.9.0+test-1.x86_64.rpm", pkg + "-0.9.0+test-1.aarch64.rpm", pkg + "-0.9.0+test-1.armv7hl.rpm",
		} {
			if st, err := os.Stat(filepath.Join(d, f)); err != nil {
				t.Errorf("package missing: %v", err)
			} else {
				t.Logf("%-45s %5.1f MiB", f, float64(st.Size())/(1<<20))
			}
		}
	}
	// A tarball per architecture, with what install.sh needs beside it.
	for _, a := range releaseArches {
		tgz := filepath.Join(d, fmt.Sprintf("smokemon-%s.linux-%s.tar.gz", testVersion, a.name))
		out, err := exec.Command("tar", "-tzf", tgz).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v: %s", tgz, err, out)
			continue
		}
		for _, f := range []string{"smokemon_exporter", "install.sh", "smokemon.yml", "agent.yml", "systemd/smokemon_exporter.service", "default/smokemon_exporter"} {
			if !strings.Contains(string(out), "/"+f+"\n") {
				t.Errorf("%s lacks %s", filepath.Base(tgz), f)
			}
		}
	}
}

// The ARM binaries, run under qemu-user against a Raspberry Pi 4 fixture tree,
// serve /metrics: the closest thing to a real Pi on these machines. The armv6
// binary runs on an emulated ARM1176 (the Pi Zero/1 CPU), so an ARMv7-only
// instruction would kill it.
func TestEmulatedARMBinariesServeMetrics(t *testing.T) {
	fixture := filepath.Join(root, "collector", "testdata", "fixtures", "rpi4")
	if _, err := os.Stat(filepath.Join(fixture, "proc", "stat")); err != nil {
		t.Skipf("no Raspberry Pi 4 fixture tree: %v", err)
	}
	d := dist(t)
	for _, c := range []struct {
		arch, qemu, cpu, goarch string
	}{
		{"arm64", "qemu-aarch64-static", "", "arm64"},
		{"armv7", "qemu-arm-static", "cortex-a7", "arm"},
		{"armv6", "qemu-arm-static", "arm1176", "arm"},
	} {
		t.Run(c.arch, func(t *testing.T) {
			qemu, err := exec.LookPath(c.qemu)
			if err != nil {
				t.Skipf("%s not installed (Debian package qemu-user-static)", c.qemu)
			}
			t.Parallel()
			addr := testutil.FreeAddr(t)
			args := []string{}
			if c.cpu != "" {
				args = append(args, "-cpu", c.cpu)
			}
			args = append(args, filepath.Join(d, "linux-"+c.arch, "smokemon_exporter"),
				"--web.listen-address="+addr,
				"--path.procfs="+filepath.Join(fixture, "proc"),
				"--path.sysfs="+filepath.Join(fixture, "sys"),
				"--path.rootfs="+filepath.Join(fixture, "rootfs"),
				"--path.devfs="+filepath.Join(fixture, "dev"))
			var out bytes.Buffer
			cmd := exec.Command(qemu, args...)
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
				if t.Failed() {
					t.Logf("output:\n%s", out.String())
				}
			}()
			client := &http.Client{Timeout: 20 * time.Second}
			var body string
			if !testutil.Eventually(60*time.Second, 200*time.Millisecond, func() bool {
				var resp *http.Response
				if resp, err = client.Get("http://" + addr + "/metrics"); err != nil {
					return false
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				return resp.StatusCode == 200
			}) {
				t.Fatalf("no /metrics after 60s (last error %v)", err)
			}
			t.Logf("%s under %s: first scrape after %v, %d bytes", c.arch, c.qemu, time.Since(start).Round(time.Millisecond), len(body))
			build := regexp.MustCompile(`smokemon_exporter_build_info\{[^}]*goarch="` + c.goarch + `"[^}]*version="` + regexp.QuoteMeta(testVersion) + `"[^}]*\} 1`)
			if !build.MatchString(body) {
				t.Errorf("no build_info with goarch=%q version=%q", c.goarch, testVersion)
			}
			// Values only the fixture has (this machine has neither 4 CPUs at 1.5 GHz
			// nor a Pi's thermal zone): the emulated binary read the tree it was given.
			for _, want := range []string{
				"smokemon_cpu_online 4\n",
				`smokemon_cpu_frequency_max_hertz{cpu="0"} 1.5e+09` + "\n",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
				}
			}
		})
	}
}
