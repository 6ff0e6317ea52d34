package collector

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"

	"github.com/smokemon/smokemon/internal/config"
)

var update = flag.Bool("update", false, "rewrite the fixture golden files")

var fixtureBoards = []string{"rpi4", "rpi5", "jetson-nano", "jetson-orin", "x86-laptop", "no-sensors"}

func TestMain(m *testing.M) {
	// Flag defaults (paths, the netstat device filter) are applied by Parse.
	if _, err := kingpin.CommandLine.Parse(nil); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// hostCollectors are the collectors that read this machine's /proc, /sys and
// nl80211; the others probe the network.
func hostCollectors() []string {
	return []string{"cpu", "disk", "gpu", "memory", "netstat", "nodeinfo", "power", "pressure", "thermal", "wifi"}
}

// withPaths points the path flags at root's proc, sys, rootfs and dev until the test ends.
func withPaths(t testing.TB, root string) {
	old := [...]string{*procPath, *sysPath, *rootfsPath, *devPath}
	*procPath = filepath.Join(root, "proc")
	*sysPath = filepath.Join(root, "sys")
	*rootfsPath = filepath.Join(root, "rootfs")
	*devPath = filepath.Join(root, "dev")
	t.Cleanup(func() { *procPath, *sysPath, *rootfsPath, *devPath = old[0], old[1], old[2], old[3] })
}

// noNL80211 makes the wifi collector use /proc/net/wireless, as on a machine without cfg80211.
func noNL80211(t testing.TB) {
	old := wifiDial
	wifiDial = func() (wifiClient, error) { return nil, errors.New("nl80211 not in fixtures") }
	t.Cleanup(func() { wifiDial = old })
}

// fixtureStatfs answers statfs for fixture mount points with fixed numbers
// derived from the path, so goldens do not depend on this machine's disks.
func fixtureStatfs(path string, st *unix.Statfs_t) error {
	n := uint64(len(path))
	st.Bsize = 4096
	st.Blocks = 1 << 20 * n
	st.Bfree = 1 << 18 * n
	st.Bavail = 1 << 17 * n
	return nil
}

func newTestLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Global.NodeName = "edge-01"
	return cfg
}

// scrapeFixture runs every host collector against a fixture tree and returns
// the text exposition, collector durations left out (they are timings).
func scrapeFixture(t *testing.T, board string) []byte {
	t.Helper()
	withPaths(t, filepath.Join("testdata", "fixtures", board))
	noNL80211(t)
	set, err := NewSet(newTestLogger(), testConfig(), hostCollectors())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(set.Close)
	set.Collector("disk").(*diskCollector).statfs = fixtureStatfs
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if mf.GetName() == "smokemon_scrape_collector_duration_seconds" {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestFixtures(t *testing.T) {
	for _, board := range fixtureBoards {
		t.Run(board, func(t *testing.T) {
			got := scrapeFixture(t, board)
			golden := filepath.Join("testdata", "fixtures", board+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestFixtures -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("exposition differs from %s (go test -run TestFixtures -update rewrites it):\n%s", golden, lineDiff(string(want), string(got)))
			}
			for _, l := range strings.Split(string(got), "\n") {
				if strings.HasPrefix(l, "smokemon_scrape_collector_success") && strings.HasSuffix(l, " 0") {
					t.Errorf("a collector failed on %s: %s", board, l)
				}
			}
			promtoolCheck(t, got)
		})
	}
}

// promtoolCheck fails on anything `promtool check metrics` reports.
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): metric lint skipped")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
