// Command host compares the cost of a full host scrape of smokemon_exporter
// (host collectors only) with Debian's node_exporter (default collectors), on
// loopback, in one run, and reports smokemon's RSS with 10 ping targets added
// beside that of tools/bench/floor (the libraries smokemon must use, alone).
//
//	go run ./tools/bench/host [-n 60]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/tools/bench/artifact"
)

func main() {
	n := flag.Int("n", 60, "scrapes of each exporter")
	nodeExporter := flag.String("node-exporter", "/usr/bin/prometheus-node-exporter", "node_exporter binary")
	flag.Parse()
	if err := run(*n, *nodeExporter); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type proc struct {
	name string
	cmd  *exec.Cmd
	url  string
}

func start(name, bin string, args ...string) (*proc, error) {
	port, err := testutil.LoopbackPort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, append([]string{"--web.listen-address=" + addr}, args...)...)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, url: "http://" + addr + "/metrics"}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, _, err := scrape(p.url); err == nil {
			return p, nil
		}
	}
	p.stop()
	return nil, fmt.Errorf("%s did not come up on %s", name, addr)
}

func (p *proc) stop() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// Uncompressed, as the size figure is the exposition's own size.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}

func scrape(url string) (time.Duration, int, error) {
	begin := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return time.Since(begin), int(n), err
}

// memory returns VmRSS, VmHWM and RssAnon in kB. RSS minus RssAnon is the
// binary's clean, shared text pages, which the kernel maps in whole
// fault-around blocks: a larger binary costs RSS without costing memory.
func memory(pid int) (rss, hwm, anon int) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var v int
		if _, err := fmt.Sscanf(s.Text(), "VmRSS: %d kB", &v); err == nil {
			rss = v
		}
		if _, err := fmt.Sscanf(s.Text(), "VmHWM: %d kB", &v); err == nil {
			hwm = v
		}
		if _, err := fmt.Sscanf(s.Text(), "RssAnon: %d kB", &v); err == nil {
			anon = v
		}
	}
	return rss, hwm, anon
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// everySecond scrapes p once a second for 20 s (every ping target probed 20
// times) and then reads its memory.
func everySecond(p *proc) (result, error) {
	var times []time.Duration
	var size int
	for range 20 {
		time.Sleep(time.Second)
		d, n, err := scrape(p.url)
		if err != nil {
			return result{}, err
		}
		times, size = append(times, d), n
	}
	rss, hwm, anon := memory(p.cmd.Process.Pid)
	return result{median(times), size, rss, hwm, anon}, nil
}

type result struct {
	median         time.Duration
	size           int
	rss, hwm, anon int
}

func run(n int, nodeExporter string) error {
	dir, err := os.MkdirTemp("", "smokemon-bench-host")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "smokemon_exporter")
	build := artifact.BuildExporter(context.Background(), "", bin)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	floorBin := filepath.Join(dir, "floor")
	build = artifact.Build(context.Background(), "", "./tools/bench/floor", floorBin)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build floor: %w", err)
	}

	hostFlags := []string{"--collector.disable-defaults"}
	for _, c := range collector.HostCollectors() {
		hostFlags = append(hostFlags, "--collector."+c)
	}
	sm, err := start("smokemon", bin, hostFlags...)
	if err != nil {
		return err
	}
	defer sm.stop()
	ne, err := start("node_exporter", nodeExporter)
	if err != nil {
		return err
	}
	defer ne.stop()

	procs := []*proc{sm, ne}
	times := map[*proc][]time.Duration{}
	sizes := map[*proc]int{}
	for i := 0; i < n+3; i++ {
		for _, p := range procs {
			d, size, err := scrape(p.url)
			if err != nil {
				return err
			}
			if i >= 3 { // the first scrapes warm caches and lazily built state
				times[p] = append(times[p], d)
				sizes[p] = size
			}
		}
	}
	res := map[*proc]result{}
	for _, p := range procs {
		rss, hwm, anon := memory(p.cmd.Process.Pid)
		res[p] = result{median(times[p]), sizes[p], rss, hwm, anon}
	}

	// All host collectors plus 10 loopback ping targets at the default 1 s interval.
	var targets []string
	for i := 2; i <= 11; i++ {
		targets = append(targets, fmt.Sprintf("127.0.0.%d", i))
	}
	pingFlags := append(slices.Clone(hostFlags), "--collector.ping")
	sp, err := start("smokemon+ping", bin, append(pingFlags, targets...)...)
	if err != nil {
		return err
	}
	defer sp.stop()
	if res[sp], err = everySecond(sp); err != nil {
		return err
	}

	// The libraries smokemon must use, with nothing of its own, scraped the same way.
	fl, err := start("floor", floorBin)
	if err != nil {
		return err
	}
	defer fl.stop()
	if res[fl], err = everySecond(fl); err != nil {
		return err
	}
	// The same, handing the freed heap back after every scrape as smokemon does.
	fc, err := start("floor, collected", floorBin, "--scrape.collect")
	if err != nil {
		return err
	}
	defer fc.stop()
	if res[fc], err = everySecond(fc); err != nil {
		return err
	}

	fmt.Printf("host scrape, %d scrapes each, alternating, loopback\n\n", n)
	fmt.Printf("%-34s %12s %12s %10s %10s %10s\n", "exporter", "median", "size", "VmRSS", "VmHWM", "RssAnon")
	row := func(label string, r result) {
		fmt.Printf("%-34s %12s %10.1fKB %8.1fMB %8.1fMB %8.1fMB\n", label, r.median.Round(time.Microsecond), float64(r.size)/1024,
			float64(r.rss)/1024, float64(r.hwm)/1024, float64(r.anon)/1024)
	}
	row("smokemon (host collectors)", res[sm])
	row("node_exporter (default collectors)", res[ne])
	row("smokemon (host + 10 ping targets)", res[sp])
	row("floor (required libraries alone)", res[fl])
	row("floor, collected after each scrape", res[fc])
	s, ne2 := res[sm], res[ne]
	fmt.Printf("\nratio smokemon/node_exporter: scrape time %.2f (target <= 0.50), size %.2f, RSS %.2f\n",
		float64(s.median)/float64(ne2.median), float64(s.size)/float64(ne2.size), float64(s.rss)/float64(ne2.rss))
	fmt.Printf("smokemon host + 10 ping targets: VmRSS %.1f MB, VmHWM %.1f MB (target <= 15 MB), of which anonymous %.1f MB\n",
		float64(res[sp].rss)/1024, float64(res[sp].hwm)/1024, float64(res[sp].anon)/1024)
	fmt.Printf("floor (kingpin, promslog, exporter-toolkit, client_golang; tools/bench/floor): VmHWM %.1f MB, collected %.1f MB; smokemon/floor %.2f, smokemon/collected floor %.2f\n",
		float64(res[fl].hwm)/1024, float64(res[fc].hwm)/1024, float64(res[sp].hwm)/float64(res[fl].hwm), float64(res[sp].hwm)/float64(res[fc].hwm))
	return nil
}
