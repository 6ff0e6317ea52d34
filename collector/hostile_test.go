package collector

import (
	"bytes"
	"flag"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

var hostileAll = flag.Bool("hostile.all", false, "run the hostile-tree suite on every file of every fixture (make hostile); without it, a fixed sample of one file in hostileSample")

// hostileSample: CI runs one file in this many of each tree (chosen by a
// hash of its path, so always the same ones) to keep the suite short.
const hostileSample = 8

// hostileDeadline is the collectors' deadline in the suite; a scrape must
// answer within it plus hostileSlack (a loaded 2-core CI machine).
const (
	hostileDeadline = 150 * time.Millisecond
	hostileSlack    = 250 * time.Millisecond
)

// A hostile variant turns the file at path (content b) into something a
// broken machine could show there.
type hostileVariant struct {
	name  string
	apply func(t *testing.T, path string, b []byte) (release func())
}

func writeVariant(content func(b []byte) []byte) func(*testing.T, string, []byte) func() {
	return func(t *testing.T, path string, b []byte) func() {
		if err := os.WriteFile(path, content(b), 0o644); err != nil {
			t.Fatal(err)
		}
		return nil
	}
}

var hostileVariants = []hostileVariant{
	{"empty", writeVariant(func([]byte) []byte { return nil })},
	{"truncated", writeVariant(truncateMidLine)},
	{"random", writeVariant(func(b []byte) []byte {
		r := rand.New(rand.NewPCG(uint64(len(b)), 16))
		out := make([]byte, 64+len(b))
		for i := range out {
			out[i] = byte(r.Uint32())
		}
		return out
	})},
	{"3MB-line", writeVariant(func([]byte) []byte { return append(bytes.Repeat([]byte("7"), 3<<20), '\n') })},
	{"eacces", func(t *testing.T, path string, b []byte) func() {
		// root reads a mode-000 file anyway; the directory variant stands in
		// for a file that cannot be read.
		if os.Geteuid() == 0 {
			return nil
		}
		os.Chmod(path, 0)
		return nil
	}},
	{"fifo", func(t *testing.T, path string, b []byte) func() {
		os.Remove(path)
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
		return func() { makeFIFORelease(path) }
	}},
	{"directory", func(t *testing.T, path string, b []byte) func() {
		os.Remove(path)
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		return nil
	}},
}

// truncateMidLine cuts b in the middle of a line (never right after a newline).
func truncateMidLine(b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	cut := len(b) / 2
	for cut > 1 && b[cut-1] == '\n' {
		cut--
	}
	return b[:cut]
}

// hostileCounts is what the suite reports.
type hostileCounts struct {
	cases, skipped, affected, panics, contained, wrongSuccess, late, fallback int
	lateCases                                                                 []string
}

// TestHostileTree turns every file of every fixture tree in turn into each
// hostile variant and scrapes every host collector. Each scrape must answer
// within its deadline, nothing may panic out of a collector, and a
// collector whose series differ from the intact tree's must say so (success
// 0) or only lose series: never report changed or new numbers with success 1.
func TestHostileTree(t *testing.T) {
	var total hostileCounts
	for _, board := range fixtureBoards {
		c := hostileBoard(t, board)
		t.Logf("hostile %s: %d cases (%d skipped), %d affected a collector, %d panics out of a collector, %d procfs panics contained per file, %d wrong-success, %d late",
			board, c.cases, c.skipped, c.affected, c.panics, c.contained, c.wrongSuccess, c.late)
		total.cases += c.cases
		total.skipped += c.skipped
		total.affected += c.affected
		total.panics += c.panics
		total.contained += c.contained
		total.wrongSuccess += c.wrongSuccess
		total.late += c.late
		total.fallback += c.fallback
		total.lateCases = append(total.lateCases, c.lateCases...)
	}
	t.Logf("hostile total (all=%v): %d cases (%d skipped: EACCES as root), %d affected a collector, %d panics, %d contained procfs panics, %d wrong-success (%d more only fell back to a default label), %d late",
		*hostileAll, total.cases, total.skipped, total.affected, total.panics, total.contained, total.wrongSuccess, total.fallback, total.late)
	lab.Tries(t, "hostile-tree scrapes within deadline+slack", func() error {
		if total.late > 0 {
			return fmt.Errorf("%d scrapes over %v + %v: %v", total.late, hostileDeadline, hostileSlack, total.lateCases)
		}
		return nil
	})
}

func hostileBoard(t *testing.T, board string) hostileCounts {
	root := copyFixture(t, board)
	withPaths(t, root)
	logs := &testutil.SyncBuffer{} // the collectors log from many goroutines
	set := newHostSetLogged(t, noNL80211, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	set.Collector("disk").(*diskCollector).statfs = fixtureStatfs
	owner := seriesOwners(t, root)
	// The intact tree's scrape is the reference: it must not be cut short
	// by a deadline on a busy machine.
	set.SetTimeout(DefaultTimeout)
	intact := gatherSet(t, set)
	for _, name := range HostCollectors() {
		if intact[`smokemon_scrape_collector_success{collector=`+name+`}`] != 1 {
			t.Fatalf("%s: %s fails on the intact tree", board, name)
		}
	}
	baseline := splitByCollector(intact, owner)
	set.SetTimeout(hostileDeadline)
	logs.Take()

	var files []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	var c hostileCounts
	for _, path := range files {
		rel, _ := filepath.Rel(root, path)
		if !*hostileAll && !sampled(board+"/"+rel) {
			continue
		}
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range hostileVariants {
			c.cases++
			if v.name == "eacces" && os.Geteuid() == 0 {
				c.skipped++
				continue
			}
			release := v.apply(t, path, orig)
			begin := time.Now()
			got := gatherSet(t, set)
			took := time.Since(begin)
			if release != nil {
				release()
			}
			restoreFile(t, path, orig)
			waitUnstuck(t, set)
			what := fmt.Sprintf("%s/%s %s", board, rel, v.name)
			if took > hostileDeadline+hostileSlack {
				c.late++
				c.lateCases = append(c.lateCases, fmt.Sprintf("%s: %v", what, took))
			}
			log := logs.Take()
			if n := strings.Count(log, "err=\"panic:"); n > 0 {
				c.panics += n
				t.Errorf("%s: a collector panicked:\n%s", what, grepLines(log, "panic:"))
			}
			c.contained += strings.Count(log, "parser panicked")
			affected := false
			for coll, series := range splitByCollector(got, owner) {
				base := baseline[coll]
				if sameSeries(series, base) {
					continue
				}
				affected = true
				if got[`smokemon_scrape_collector_success{collector=`+coll+`}`] == 0 {
					continue
				}
				if fallbackLabels(series, base) && len(changedSeries(series, base)) > 0 {
					c.fallback++
				}
				if bad := changedSeries(series, base); len(bad) > 0 && !fallbackLabels(series, base) {
					c.wrongSuccess++
					t.Errorf("%s: %s reports success 1 with series not in the intact tree's scrape: %v", what, coll, bad)
				}
			}
			if affected {
				c.affected++
			}
		}
	}
	return c
}

// sampled picks the files the short run covers.
func sampled(name string) bool {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()%hostileSample == 0
}

func restoreFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		os.Remove(path)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
}

// waitUnstuck waits for a released FIFO's reader to end, so the next case
// starts with every collector runnable.
func waitUnstuck(t *testing.T, set *Set) {
	t.Helper()
	if !testutil.Eventually(5*time.Second, 10*time.Millisecond, func() bool { return len(set.Stuck()) == 0 }) {
		t.Fatalf("collectors %v still stuck 5s after their FIFO was released", set.Stuck())
	}
}

// seriesOwners maps each metric name of the intact tree to the collector
// that produces it, by running the collectors one at a time.
func seriesOwners(t *testing.T, root string) map[string]string {
	t.Helper()
	owner := map[string]string{}
	for _, name := range HostCollectors() {
		one := newHostSet(t, noNL80211)
		if d, ok := one.collectors["disk"].(*diskCollector); ok {
			d.statfs = fixtureStatfs
		}
		only := SetOf(one.logger, map[string]Collector{name: one.collectors[name]})
		for k := range gatherSet(t, only) {
			if n := metricName(k); !strings.HasPrefix(n, "smokemon_scrape_") {
				owner[n] = name
			}
		}
	}
	return owner
}

func metricName(key string) string { n, _, _ := strings.Cut(key, "{"); return n }

// splitByCollector groups a scrape's series by the collector that owns
// them; the scrape's own series go under their collector label, and a
// series no collector produced on the intact tree under "unknown".
func splitByCollector(all map[string]float64, owner map[string]string) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, name := range HostCollectors() {
		out[name] = map[string]float64{}
	}
	for k, v := range all {
		n := metricName(k)
		if strings.HasPrefix(n, "smokemon_scrape_") {
			continue
		}
		o, ok := owner[n]
		if !ok {
			o = "unknown"
			if out[o] == nil {
				out[o] = map[string]float64{}
			}
		}
		out[o][k] = v
	}
	return out
}

func sameSeries(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	return len(changedSeries(a, b)) == 0
}

// changedSeries lists the series of got that base lacks or has another value for.
func changedSeries(got, base map[string]float64) []string {
	var bad []string
	for k, v := range got {
		if w, ok := base[k]; !ok || w != v {
			bad = append(bad, fmt.Sprintf("%s=%g (intact: %g)", k, v, w))
		}
	}
	sort.Strings(bad)
	return bad
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// fallbackLabels says whether every series of got that base lacks is a
// series of base under other labels, with the same value: a bad label file
// (temp1_label, a supply's type) made the collector fall back to a default
// label (temp1), or the rpi throttle flags to another source. The numbers
// are the intact tree's; only where a label came from changed.
func fallbackLabels(got, base map[string]float64) bool {
	for k, v := range got {
		if w, ok := base[k]; ok {
			if w != v {
				return false
			}
			continue
		}
		found := false
		for bk, bv := range base {
			if metricName(bk) == metricName(k) && bv == v {
				found = true
				break
			}
		}
		if !found && !strings.HasSuffix(metricName(k), "_info") {
			return false
		}
	}
	return true
}
