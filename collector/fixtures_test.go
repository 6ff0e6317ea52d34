package collector

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"

	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/testutil"
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
func noNL80211() (wifiClient, error) { return nil, errors.New("nl80211 not in fixtures") }

// newHostSet builds every host collector, the wifi one with dial.
func newHostSet(t testing.TB, dial func() (wifiClient, error)) *Set {
	t.Helper()
	return newHostSetLogged(t, dial, testutil.Logger())
}

// newHostSetLogged is newHostSet with the collectors logging to logger.
func newHostSetLogged(t testing.TB, dial func() (wifiClient, error), logger *slog.Logger) *Set {
	t.Helper()
	cfg := testConfig()
	cs := map[string]Collector{}
	for _, n := range HostCollectors() {
		var c Collector
		var err error
		if n == "wifi" {
			c, err = newWifi(logger, dial)
		} else {
			c, err = factories[n].factory(logger, cfg)
		}
		if err != nil {
			t.Fatalf("collector %s: %v", n, err)
		}
		cs[n] = c
	}
	set := SetOf(logger, cs)
	t.Cleanup(set.Close)
	return set
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
	set := newHostSet(t, noNL80211)
	set.Collector("disk").(*diskCollector).statfs = fixtureStatfs
	mfs := testutil.Gather(t, set)
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
			testutil.PromtoolCheck(t, got)
		})
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
