package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

var nan = math.NaN()

// sample is one minute's look at the exporter.
type sample struct {
	at                  time.Duration // since the soak began
	rss, rssAnon        float64       // MB (2^20 bytes), the minute's lowest
	heap                float64       // MB, go_memstats_heap_inuse_bytes
	scrapeKB            float64       // the main scraper's last body
	goroutines, gMax    float64       // fewest and most over the minute's scrapes
	threads, fds        float64
	ok, failed, hangups int64 // cumulative
	lastErr             string
}

const (
	tableHeader = "   min   rss_MB  anon_MB  heap_MB  scrape_kB  goroutines(max)  threads  fds  scrapes_ok  failed  hangups"
	csvHeader   = "seconds,rss_bytes,rss_anon_bytes,heap_inuse_bytes,scrape_bytes,goroutines_min,goroutines_max,threads,fds,scrapes_ok,scrapes_failed,hangups"
)

func take(pid int, l *load, m *memWatch, at time.Duration) (sample, error) {
	s := sample{at: at, ok: l.ok.Load(), failed: l.failed.Load(), hangups: l.hangups.Load()}
	s.goroutines, s.gMax = l.window()
	s.rss, s.rssAnon = m.window()
	l.mu.Lock()
	s.heap, s.scrapeKB, s.lastErr = l.heapUsed/(1<<20), l.bytes/1024, l.lastErr
	l.mu.Unlock()
	p, err := procfs.NewProc(pid)
	if err != nil {
		return s, err
	}
	stat, err := p.Stat()
	if err != nil {
		return s, err
	}
	fds, err := p.FileDescriptorsLen()
	if err != nil {
		return s, err
	}
	s.threads, s.fds = float64(stat.NumThreads), float64(fds)
	return s, nil
}

// memWatch reads the exporter's RSS and RssAnon every second and keeps
// each minute's lowest: a scrape in flight holds up to 2 MB more (freed
// after it by scrapeGC), so single readings scatter by that much, while a
// leak raises the floor.
type memWatch struct {
	mu              sync.Mutex
	rssMin, anonMin float64 // MB
}

func (m *memWatch) run(ctx context.Context, pid int) {
	m.window()
	p, err := procfs.NewProc(pid)
	if err != nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for ; ctx.Err() == nil; <-t.C {
		if st, err := p.NewStatus(); err == nil {
			m.mu.Lock()
			m.rssMin = math.Min(m.rssMin, float64(st.VmRSS)/(1<<20))
			m.anonMin = math.Min(m.anonMin, float64(st.RssAnon)/(1<<20))
			m.mu.Unlock()
		}
	}
}

func (m *memWatch) window() (rss, anon float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rss, anon = m.rssMin, m.anonMin
	m.rssMin, m.anonMin = math.Inf(1), math.Inf(1)
	if math.IsInf(rss, 0) {
		return nan, nan
	}
	return rss, anon
}

func (s sample) row() string {
	return fmt.Sprintf("%6.1f %8.2f %8.2f %8.2f %10.1f %11.0f(%3.0f) %8.0f %4.0f %11d %7d %8d",
		s.at.Minutes(), s.rss, s.rssAnon, s.heap, s.scrapeKB, s.goroutines, s.gMax, s.threads, s.fds, s.ok, s.failed, s.hangups)
}

func (s sample) csv() string {
	return fmt.Sprintf("%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%d,%d,%d",
		s.at.Seconds(), s.rss*(1<<20), s.rssAnon*(1<<20), s.heap*(1<<20), s.scrapeKB*1024,
		s.goroutines, s.gMax, s.threads, s.fds, s.ok, s.failed, s.hangups)
}

// fit is the least-squares slope of y over x and its standard error.
func fit(x, y []float64) (slope, se float64) {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx, my = mx+x[i]/n, my+y[i]/n
	}
	var sxx, sxy float64
	for i := range x {
		sxx += (x[i] - mx) * (x[i] - mx)
		sxy += (x[i] - mx) * (y[i] - my)
	}
	if n < 3 || sxx == 0 {
		return nan, nan
	}
	slope = sxy / sxx
	var ssr float64
	for i := range x {
		r := y[i] - my - slope*(x[i]-mx)
		ssr += r * r
	}
	return slope, math.Sqrt(ssr / (n - 2) / sxx)
}

type series struct {
	name, unit string
	get        func(sample) float64
}

var fitted = []series{
	{"rss", "MB", func(s sample) float64 { return s.rss }},
	{"rss_anon", "MB", func(s sample) float64 { return s.rssAnon }},
	{"heap_inuse", "MB", func(s sample) float64 { return s.heap }},
	{"scrape", "kB", func(s sample) float64 { return s.scrapeKB }},
	{"goroutines", "", func(s sample) float64 { return s.goroutines }},
	{"threads", "", func(s sample) float64 { return s.threads }},
	{"fds", "", func(s sample) float64 { return s.fds }},
}

// report prints the fitted slopes (± their standard error) over the
// samples after warmup and the PASS/FAIL lines; it returns an error when a
// figure is missed. logLines < 0 leaves the log out.
//
// Each series is fitted on its floors over blocks of block samples: even a
// minute's lowest RssAnon flips between two levels 0.7 MB apart (buffers
// that the scrapes' pools keep or drop across a collection), which a
// one-hour fit turns into ±0.4 MB/h; a leak raises the floor all the same.
func report(w io.Writer, samples []sample, warmup time.Duration, block, logLines int) error {
	var kept []sample
	for _, s := range samples {
		if s.at >= warmup {
			kept = append(kept, s)
		}
	}
	block = max(block, 1)
	if len(kept) < 3*block {
		return fmt.Errorf("only %d samples after the %s warm-up: soak longer (3 blocks of %d are needed for a slope)", len(kept), warmup, block)
	}
	first, last := kept[0], kept[len(kept)-1]
	fmt.Fprintf(w, "\nslopes per hour over %d samples, minutes %.0f-%.0f, fitted on the floors of %d blocks of %d (least squares):\n",
		len(kept), first.at.Minutes(), last.at.Minutes(), len(kept)/block, block)
	slopes := map[string]float64{}
	for _, f := range fitted {
		var x, y []float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := 0; i+block <= len(kept); i += block {
			floor, at := math.Inf(1), 0.0
			for _, s := range kept[i : i+block] {
				v := f.get(s)
				floor, at = math.Min(floor, v), at+s.at.Hours()/float64(block)
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			x, y = append(x, at), append(y, floor)
		}
		b, se := fit(x, y)
		slopes[f.name] = b
		fmt.Fprintf(w, "  %-11s %+9.3f ± %.3f %s/h   (min %.2f, max %.2f, last %.2f)\n", f.name, b, se, f.unit, lo, hi, f.get(last))
	}
	all := last.ok + last.failed
	fmt.Fprintf(w, "scrapes: %d ok, %d failed (%.3f%%), %d hang-ups\n",
		last.ok, last.failed, 100*float64(last.failed)/math.Max(1, float64(all)), last.hangups)
	if logLines >= 0 {
		fmt.Fprintf(w, "exporter log: %d lines (%.4f/s)\n", logLines, float64(logLines)/last.at.Seconds())
	}
	if last.lastErr != "" {
		fmt.Fprintf(w, "last scrape error: %s\n", last.lastErr)
	}

	var failed []string
	check := func(ok bool, what string) {
		verdict := "PASS"
		if !ok {
			verdict = "FAIL"
			failed = append(failed, what)
		}
		fmt.Fprintf(w, "%s  %s\n", verdict, what)
	}
	check(slopes["rss"] <= 0.1, fmt.Sprintf("RSS slope %+.3f MB/h ≤ 0.1 MB/h", slopes["rss"]))
	// Goroutines: each minute's fewest, between bursts of work; "constant"
	// is no growth, under one goroutine gained over the fitted window.
	growth := slopes["goroutines"] * (last.at - first.at).Hours()
	check(growth < 1, fmt.Sprintf("goroutines constant: fitted growth %+.2f over the window < 1", growth))
	check(last.failed == 0, fmt.Sprintf("%d failed scrapes", last.failed))
	if len(failed) > 0 {
		return fmt.Errorf("%d figure(s) missed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// readCSV reads back what -out wrote, for a report over another window.
func readCSV(path string) ([]sample, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []sample
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		var s sample
		var sec, rss, anon, heap, scrape float64
		_, err := fmt.Sscanf(strings.ReplaceAll(line, ",", " "), "%f %f %f %f %f %f %f %f %f %d %d %d",
			&sec, &rss, &anon, &heap, &scrape, &s.goroutines, &s.gMax, &s.threads, &s.fds, &s.ok, &s.failed, &s.hangups)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v (want the columns %s)", path, i+2, err, csvHeader)
		}
		s.at = time.Duration(sec * float64(time.Second))
		s.rss, s.rssAnon, s.heap, s.scrapeKB = rss/(1<<20), anon/(1<<20), heap/(1<<20), scrape/1024
		out = append(out, s)
	}
	return out, nil
}
