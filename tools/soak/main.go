// Command soak runs smokemon_exporter with every collector and a few hundred
// loopback ping targets for an hour or more, scrapes it every second under
// a small concurrent load and through clients that hang up mid-body, and
// samples its RSS, RssAnon, goroutines, threads and open fds every minute.
// At the end it fits a least-squares slope per hour to each, over the
// samples after the warm-up, and checks issue 16's figures: RSS slope
// ≤ 0.1 MB/h and a constant goroutine count.
//
// Every address it uses is on 127.0.0.0/8; the host collectors read this
// machine's real /proc and /sys.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type options struct {
	duration, warmup, every time.Duration
	floor                   time.Duration
	targets, scrapers       int
	out, bin, extra, from   string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 65*time.Minute, "how long to soak")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Minute, "samples before this are shown but left out of the slopes")
	flag.DurationVar(&o.every, "sample", time.Minute, "time between samples")
	flag.DurationVar(&o.floor, "floor", 5*time.Minute, "the slopes are fitted on each series' lowest value per this much time")
	flag.IntVar(&o.targets, "targets", 300, "loopback ping targets (127.0.x.y)")
	flag.IntVar(&o.scrapers, "scrapers", 3, "extra concurrent scrapers, each every 2s, beside the 1s main scraper")
	flag.StringVar(&o.out, "out", "", "CSV file for the samples (none when empty)")
	flag.StringVar(&o.bin, "exporter", "", "smokemon_exporter binary to soak (default: build ./cmd/smokemon_exporter)")
	flag.StringVar(&o.extra, "args", "", "extra exporter flags, space-separated (e.g. --web.enable-pprof)")
	flag.StringVar(&o.from, "report", "", "no soak: print the report of a CSV that -out wrote, over -warmup onwards")
	flag.Parse()
	err := run(o)
	if o.from != "" {
		var samples []sample
		if samples, err = readCSV(o.from); err == nil {
			err = report(os.Stdout, samples, o.warmup, int(o.floor/o.every), -1)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.from != "" {
		return nil
	}
	if o.targets < 1 || o.targets > 250*250 {
		return fmt.Errorf("-targets %d: want 1..%d", o.targets, 250*250)
	}
	dir, err := os.MkdirTemp("", "smokemon-soak-")
	if err != nil {
		return err
	}
	// dir stays: it holds the exporter log for a look afterwards.
	if o.bin == "" {
		if o.bin, err = build(dir); err != nil {
			return err
		}
	}
	e, err := startEnv(dir)
	if err != nil {
		return fmt.Errorf("loopback servers: %w", err)
	}
	defer e.close()
	x, err := startExporter(o, e, dir)
	if err != nil {
		return err
	}
	defer x.stop()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, o.duration)
	defer cancelRun()
	l := newLoad(x.url)
	go l.run(ctx, o.scrapers)

	samples, err := record(ctx, o, x, l)
	if err != nil {
		return err
	}
	cancelRun()
	return report(os.Stdout, samples, o.warmup, int(o.floor/o.every), x.logLines())
}

// build compiles the exporter as `make build` would, minus the version stamp.
func build(dir string) (string, error) {
	gobin := os.Getenv("GO")
	if gobin == "" {
		gobin = "go"
	}
	bin := filepath.Join(dir, "smokemon_exporter")
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", bin, "./cmd/smokemon_exporter")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the exporter (run from the repository root): %w", err)
	}
	return bin, nil
}

// record samples the exporter every o.every until ctx ends, printing a row
// per sample and appending it to the CSV.
func record(ctx context.Context, o options, x *exporter, l *load) ([]sample, error) {
	var csv *os.File
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		csv = f
		fmt.Fprintln(csv, csvHeader)
	}
	fmt.Printf("soak: %s with %d ping targets, every collector, for %s (warm-up %s); pid %d, log %s\n",
		x.url, o.targets, o.duration, o.warmup, x.pid(), x.logPath)
	fmt.Println(tableHeader)
	start := time.Now()
	var mem memWatch
	go mem.run(ctx, x.pid())
	var samples []sample
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return samples, nil
		case <-tick.C:
		}
		if x.exited() {
			return samples, fmt.Errorf("the exporter exited: %s", x.tail())
		}
		s, err := take(x.pid(), l, &mem, time.Since(start))
		if err != nil {
			return samples, err
		}
		samples = append(samples, s)
		fmt.Println(s.row())
		if csv != nil {
			fmt.Fprintln(csv, s.csv())
		}
	}
}
