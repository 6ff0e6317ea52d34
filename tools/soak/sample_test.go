package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFit(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4}
	if b, se := fit(x, []float64{1, 3, 5, 7, 9}); b != 2 || se != 0 {
		t.Errorf("exact line: slope %v ± %v, want 2 ± 0", b, se)
	}
	// About their mean 0.2: slope 0, SSR 4.8 over n-2 = 3, Sxx 10, so
	// the standard error is sqrt(4.8/3/10) = 0.4.
	b, se := fit(x, []float64{1, -1, 1, -1, 1})
	if math.Abs(b) > 1e-12 || math.Abs(se-0.4) > 1e-12 {
		t.Errorf("alternating: slope %v ± %v, want 0 ± 0.4", b, se)
	}
	if b, _ := fit(x[:2], []float64{1, 2}); !math.IsNaN(b) {
		t.Errorf("two points give slope %v, want NaN (no error estimate)", b)
	}
}

func TestCSVRoundTrip(t *testing.T) {
	in := []sample{
		{at: time.Minute, rss: 20.5, rssAnon: 8.25, heap: 6, scrapeKB: 700, goroutines: 32, gMax: 50, threads: 8, fds: 23, ok: 60, failed: 1, hangups: 20},
		{at: 2 * time.Minute, rss: 21, rssAnon: 8.5, heap: 6.5, scrapeKB: 701, goroutines: 31, gMax: 49, threads: 9, fds: 22, ok: 120, failed: 1, hangups: 40},
	}
	lines := []string{csvHeader}
	for _, s := range in {
		lines = append(lines, s.csv())
	}
	path := filepath.Join(t.TempDir(), "soak.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := readCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d samples, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].row() != in[i].row() {
			t.Errorf("sample %d:\n got %s\nwant %s", i, out[i].row(), in[i].row())
		}
	}
	os.WriteFile(path, []byte(csvHeader+"\n60,1,2\n"), 0o644)
	if _, err := readCSV(path); err == nil || !strings.Contains(err.Error(), "soak.csv:2") {
		t.Errorf("short line: err %v, want one naming soak.csv:2", err)
	}
}
