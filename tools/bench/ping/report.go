package main

import (
	"time"

	"fmt"
	"io"
	"math"
	"strings"
)

const mb = 1 << 20

func find(all []*result, n int, k kind) *result {
	for _, r := range all {
		if r.n == n && r.kind == k {
			return r
		}
	}
	return nil
}

// usable says whether r has figures, and if not, why.
func usable(r *result) (bool, string) {
	switch {
	case r == nil:
		return false, "not run"
	case r.missing != "":
		return false, "missing: " + r.missing
	case r.err != nil:
		return false, "failed"
	}
	return true, ""
}

func bothUsable(a, b *result) bool {
	okA, _ := usable(a)
	okB, _ := usable(b)
	return okA && okB
}

func isFloor(k kind) bool { return k == kFloor || k == kFloorCollect }

func report(w io.Writer, o *options, all []*result) {
	cols := []struct {
		head  string
		right bool
	}{
		{"N", true}, {"tool", false}, {"CPU % (stat)", true}, {"CPU % (sched)", true}, {"peak RSS MB", true},
		{"burst peak MB", true}, {"RSS MB", true}, {"scrape ms", true}, {"scrape KB", true}, {"sent/s", true}, {"replies/s", true},
		{"median RTT µs", true}, {"mean RTT µs", true}, {"median from", false},
	}
	var rows [][]string
	for _, r := range all {
		row := []string{fmt.Sprint(r.n), kindName[r.kind]}
		if ok, why := usable(r); !ok {
			if r.err != nil {
				why = "FAILED: " + firstLine(r.err.Error())
			}
			rows = append(rows, append(row, "", "", "", "", "", "", "", "", "", "", "", why))
			continue
		}
		scrT, scrS := "-", "-"
		if r.scrapeTime > 0 {
			scrT = fmt.Sprintf("%.2f", r.scrapeTime.Seconds()*1e3)
			scrS = fmt.Sprintf("%.1f", float64(r.scrapeSize)/1024)
		}
		replies, sent := fmt.Sprintf("%.0f", r.replyRate), "-"
		if isFloor(r.kind) {
			replies = "-"
		}
		if !math.IsNaN(r.sendRate) {
			sent = fmt.Sprintf("%.0f", r.sendRate)
		}
		med := us(r.rttMedian)
		if r.rttHi > 0 && !math.IsInf(r.rttHi, 1) {
			med += fmt.Sprintf(" [%s–%s]", us(r.rttLo), us(r.rttHi))
		}
		rows = append(rows, append(row,
			fmt.Sprintf("%.2f", r.cpuStat), fmt.Sprintf("%.2f", r.cpuSched),
			fmt.Sprintf("%.1f", float64(r.hwm)/mb), fmt.Sprintf("%.1f", float64(r.hwmBurst)/mb), fmt.Sprintf("%.1f", float64(r.rss)/mb),
			scrT, scrS, sent, replies, med, us(r.rttMean), r.rttHow))
	}
	width := make([]int, len(cols))
	for i, c := range cols {
		width[i] = len([]rune(c.head))
	}
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("  ")
			}
			if cols[i].right {
				b.WriteString(pad + c)
			} else if i < len(cells)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	mode := "side by side"
	if o.alone {
		mode = "each tool alone"
	}
	fmt.Fprintf(w, "\nsmokemon bench-ping — loopback, 1 Hz per target, %v rounds, CPU and RTT over the last %v, %s\n\n",
		o.duration, o.duration-o.warmup, mode)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	line(heads)
	seps := make([]string, len(cols))
	for i := range cols {
		seps[i] = strings.Repeat("-", width[i])
	}
	line(seps)
	prevN := -1
	for i, row := range rows {
		if all[i].n != prevN && prevN != -1 {
			fmt.Fprintln(w)
		}
		prevN = all[i].n
		line(row)
	}
	fmt.Fprintln(w, `
CPU % is of one core: utime+stime from /proc/PID/stat (10 ms ticks), and the scheduler's run time summed
over threads (/proc/PID/task/*/schedstat). Peak RSS is VmHWM over the window (scraped every
-scrape-interval, as Prometheus would); burst peak is VmHWM after the timed back-to-back scrapes too; RSS
is VmRSS at the end. Scrape: median of timed text-format scrapes, uncompressed. [a–b] is the histogram
bucket holding the median. smokemon is built as it ships: CGO_ENABLED=0, -trimpath, -ldflags "-s -w".
floor is tools/bench/floor, built the same way: kingpin, promslog, exporter-toolkit and client_golang
with its process, Go and build-info collectors, no target and no collector of its own; "floor, collected"
is the same binary handing the freed heap back after every scrape, as smokemon does (the runtime's own
bookkeeping grows with its first collections, which the plain floor's scrapes are too small to start).`)

	fmt.Fprintln(w, "\nmachine load during each window (all processes, not just the tools; other work skews the figures)")
	seen := map[string]bool{}
	for _, r := range all {
		key, who := fmt.Sprint(r.n), ""
		if r.alone {
			key, who = fmt.Sprint(r.n, r.kind), " ("+kindName[r.kind]+" alone)"
		}
		if !seen[key] && r.machine > 0 {
			seen[key] = true
			fmt.Fprintf(w, "  N=%-5d %.0f%% of all %d CPUs busy%s\n", r.n, r.machine, numCPU(), who)
		}
	}

	// Loopback never loses echoes; a tool far below N replies/s means the
	// machine (or another test fiddling with lo) disturbed the round.
	for _, r := range all {
		if ok, _ := usable(r); ok && !isFloor(r.kind) && r.replyRate < 0.95*float64(r.n) {
			fmt.Fprintf(w, "  WARNING: N=%d %s got %.0f replies/s, not %d: the round was disturbed or the tool fell behind; treat its figures with care\n",
				r.n, kindName[r.kind], r.replyRate, r.n)
		}
	}

	fmt.Fprintln(w, "\nratios")
	for _, n := range o.ns {
		sm, fp, sp := find(all, n, kSmokemon), find(all, n, kFping), find(all, n, kSmokeping)
		var parts []string
		if bothUsable(sm, fp) {
			parts = append(parts, "CPU smokemon/fping "+ratio(sm.cpuStat, fp.cpuStat),
				fmt.Sprintf("median RTT smokemon−fping %+.1f µs", (sm.rttMedian-fp.rttMedian)*1e6))
		}
		if bothUsable(sm, sp) {
			parts = append(parts, "CPU smokemon/smokeping_prober "+ratio(sm.cpuStat, sp.cpuStat),
				"RSS smokemon/smokeping_prober "+ratio(float64(sm.hwm), float64(sp.hwm)))
		}
		sa := find(all, n, kSmokemonAll)
		for _, k := range []kind{kFloor, kFloorCollect} {
			if fl := find(all, n, k); bothUsable(sa, fl) {
				parts = append(parts, fmt.Sprintf("RSS smokemon (all defaults)/%s %s (%+.1f MB)",
					kindName[k], ratio(float64(sa.hwm), float64(fl.hwm)), (float64(sa.hwm)-float64(fl.hwm))/mb))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "  N=%-5d %s\n", n, strings.Join(parts, "   "))
		}
	}

	fmt.Fprintf(w, "\nsmokeping_prober is left out above %d targets, where it cannot keep up, and runs alone from %d,\n"+
		"where beside the others it would take both CPUs from them; its ratios there are across windows.\n", smokepingMax, smokepingAloneFrom)
	fmt.Fprintln(w, "\ntargets (issue 2 and issue 18, Figures)")
	check := func(name string, rs []*result, pass func() (bool, string)) {
		for _, r := range rs {
			if ok, why := usable(r); !ok {
				fmt.Fprintf(w, "  SKIP  %s: %s %s\n", name, kindNameOr(r), why)
				return
			}
		}
		ok, detail := pass()
		verdict := "FAIL"
		if ok {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", verdict, name, detail)
	}
	{
		sm, fp, sp := find(all, 100, kSmokemon), find(all, 100, kFping), find(all, 100, kSmokeping)
		check("100 targets, CPU ≤ 2× fping", []*result{sm, fp}, func() (bool, string) {
			return sm.cpuStat <= 2*fp.cpuStat, fmt.Sprintf("%.2f%% vs 2 × %.2f%% = %.2f%%", sm.cpuStat, fp.cpuStat, 2*fp.cpuStat)
		})
		check("100 targets, CPU ≤ 1/10 smokeping_prober", []*result{sm, sp}, func() (bool, string) {
			return sm.cpuStat <= sp.cpuStat/10, fmt.Sprintf("%.2f%% vs %.2f%% / 10 = %.2f%%", sm.cpuStat, sp.cpuStat, sp.cpuStat/10)
		})
	}
	{
		sm := find(all, 1000, kSmokemon)
		check("1000 targets, CPU ≤ 10% of one core", []*result{sm}, func() (bool, string) {
			return sm.cpuStat <= 10, fmt.Sprintf("%.2f%%", sm.cpuStat)
		})
		check("1000 targets, RSS ≤ 30 MB", []*result{sm}, func() (bool, string) {
			return sm.hwm <= 30*mb, fmt.Sprintf("peak %.1f MB, burst peak %.1f MB, now %.1f MB", float64(sm.hwm)/mb, float64(sm.hwmBurst)/mb, float64(sm.rss)/mb)
		})
	}
	{
		sa, fl, fc := find(all, 10, kSmokemonAll), find(all, 10, kFloor), find(all, 10, kFloorCollect)
		check("10 targets, every default collector, RSS ≤ 15 MB", []*result{sa}, func() (bool, string) {
			detail := fmt.Sprintf("peak %.1f MB, burst peak %.1f MB, now %.1f MB", float64(sa.hwm)/mb, float64(sa.hwmBurst)/mb, float64(sa.rss)/mb)
			var floors []string
			for _, f := range []*result{fl, fc} {
				if ok, _ := usable(f); ok {
					floors = append(floors, fmt.Sprintf("%s: peak %.1f MB", kindName[f.kind], float64(f.hwm)/mb))
				}
			}
			if len(floors) > 0 {
				detail += " (the required libraries alone, " + strings.Join(floors, "; ") + ")"
			}
			return sa.hwm <= 15*mb, detail
		})
	}
	// Issue 18: cheaper than fping per probe, and 10 000 targets on one node.
	for _, c := range []struct {
		n   int
		max float64
	}{{100, 1.0}, {1000, 0.7}} {
		sm, fp := find(all, c.n, kSmokemon), find(all, c.n, kFping)
		check(fmt.Sprintf("%d targets, CPU ≤ %.1f× fping", c.n, c.max), []*result{sm, fp}, func() (bool, string) {
			return sm.cpuStat <= c.max*fp.cpuStat, fmt.Sprintf("%.2f%% vs %.1f × %.2f%% = %.2f%%", sm.cpuStat, c.max, fp.cpuStat, c.max*fp.cpuStat)
		})
	}
	{
		sm := find(all, 10000, kSmokemon)
		check("10000 targets, CPU ≤ 20% of one core", []*result{sm}, func() (bool, string) {
			return sm.cpuStat <= 20, fmt.Sprintf("%.2f%%", sm.cpuStat)
		})
		check("10000 targets, RSS ≤ 50 MB", []*result{sm}, func() (bool, string) {
			return sm.hwm <= 50*mb, fmt.Sprintf("peak %.1f MB, burst peak %.1f MB, now %.1f MB", float64(sm.hwm)/mb, float64(sm.hwmBurst)/mb, float64(sm.rss)/mb)
		})
		// The window's edges fall between a target's probes: a window of
		// W seconds holds W or W±1 probes of each, hence the 0.5 % slack.
		check("10000 targets, 100% of probes sent on schedule (sent/s ≥ 99.5% of targets at 1 Hz)", []*result{sm}, func() (bool, string) {
			return sm.sendRate >= 0.995*10000, fmt.Sprintf("%.0f sent/s", sm.sendRate)
		})
		check("10000 targets, every probe answered (replies/s ≥ 99.5% of targets)", []*result{sm}, func() (bool, string) {
			return sm.replyRate >= 0.995*10000, fmt.Sprintf("%.0f replies/s", sm.replyRate)
		})
		check("10000 targets, scrape < 10 s", []*result{sm}, func() (bool, string) {
			return sm.scrapeTime < 10*time.Second, fmt.Sprintf("%.0f ms, %d KB", float64(sm.scrapeTime)/1e6, sm.scrapeSize/1024)
		})
	}
	for _, n := range o.ns {
		sm, fp := find(all, n, kSmokemon), find(all, n, kFping)
		check(fmt.Sprintf("N=%d median RTT ≤ fping's + 20 µs", n), []*result{sm, fp}, func() (bool, string) {
			return sm.rttMedian <= fp.rttMedian+20e-6, fmt.Sprintf("%s µs vs %s + 20 = %s µs", us(sm.rttMedian), us(fp.rttMedian), us(fp.rttMedian+20e-6))
		})
	}
}

func kindNameOr(r *result) string {
	if r == nil {
		return "round"
	}
	return kindName[r.kind]
}

func us(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return fmt.Sprintf("%.1f", s*1e6)
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
