// Command mesh is the `make bench-mesh` figure script of issue 7: it runs, side
// by side on loopback, a smokemon_exporter probing N mesh peers over UDP, the
// responder those peers point at (another smokemon_exporter), and a
// smokemon_exporter pinging N loopback targets, all at the same interval, and
// prints the CPU and memory (RSS, its peak and RssAnon) each costs per peer
// (per target for ping), measured the same way in the same run. Issue 18's
// target: 300 peers within 25 MB RSS. Beside them runs tools/bench/floor,
// the libraries and the Go runtime alone (scraped and collected the same
// way), so what the peers add shows apart from what every exporter pays.
//
// Only 127.0.0.0/8 is ever probed.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/tools/bench/artifact"
)

func main() { os.Exit(run()) }

type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	log  *os.File
}

func run() int {
	var (
		nList    = flag.String("n", "10,100,300", "comma-separated peer counts, one round each")
		interval = flag.Duration("interval", 100*time.Millisecond, "probe interval per peer / target")
		window   = flag.Duration("duration", 30*time.Second, "measurement window per round")
		warmup   = flag.Duration("warmup", 5*time.Second, "start-up excluded from the window")
		bin      = flag.String("smokemon", "", "smokemon_exporter binary (default: build ./cmd/smokemon_exporter)")
	)
	flag.Parse()
	tmp, err := os.MkdirTemp("", "bench-mesh-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	builds := []*exec.Cmd{artifact.Build(context.Background(), "", "./tools/bench/floor", filepath.Join(tmp, "floor"))}
	if *bin == "" {
		*bin = filepath.Join(tmp, "smokemon_exporter")
		builds = append(builds, artifact.BuildExporter(context.Background(), "", *bin))
	}
	for _, b := range builds {
		if out, err := b.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench-mesh: build: %v\n%s", err, out)
			return 1
		}
	}
	fmt.Printf("bench-mesh: interval %v, window %v after %v warm-up; CPU from /proc/PID/task/*/schedstat (ns);\n"+
		"  RSS and RssAnon from /proc/PID/status 1 s after a scrape; start HWM is VmHWM through start-up and warm-up,\n"+
		"  scrape HWM the peak from then on (VmHWM reset through clear_refs), through the window and %d scrapes at its end\n\n",
		*interval, *window, *warmup, endScrapes)
	var prevN int
	var prevCPU [3]float64
	fmt.Printf("%6s  %-22s %9s %14s %12s %8s %10s %11s %9s %10s\n", "N", "process", "CPU %", "CPU µs/s/peer", "replies/s", "RSS MB", "start HWM", "scrape HWM", "Anon MB", "Anon KB/peer")
	for _, f := range strings.Split(*nList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 10000 {
			fmt.Fprintf(os.Stderr, "bench-mesh: -n: bad count %q\n", f)
			return 2
		}
		cpu, err := round(*bin, tmp, n, *interval, *window, *warmup)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-mesh:", err)
			return 1
		}
		if prevN > 0 && n > prevN {
			// The marginal cost leaves out what every process pays at rest.
			var m [3]float64
			for i := range m {
				m[i] = (cpu[i] - prevCPU[i]) * 1e6 / float64(n-prevN)
			}
			fmt.Printf("%6s  marginal per-peer CPU from N=%d to %d: prober %.1f µs/s, responder %.1f µs/s, ping %.1f µs/s; prober / ping %.2f×\n\n",
				"", prevN, n, m[0], m[1], m[2], m[0]/m[2])
		}
		prevN, prevCPU = n, cpu
	}
	return 0
}

// endScrapes is how many scrapes of each process end the window (the first
// also reads the replies), so the scrape HWM includes a scrape's peak.
const endScrapes = 3

func round(bin, tmp string, n int, iv, window, warmup time.Duration) (cpuFrac [3]float64, err error) {
	port := mustPort()
	respCfg := fmt.Sprintf("mesh:\n  responder: {listen: 127.0.0.1, udp_port: %d, rate_limit: 1000000, rate_burst: 100000}\n", port)
	var peers, targets strings.Builder
	fmt.Fprintf(&peers, "mesh:\n  interval: %v\n  timeout: %v\n  protocols: [udp]\n  peers:\n", iv, iv)
	fmt.Fprintf(&targets, "global: {interval: %v}\nping:\n  targets:\n", iv)
	for i := range n {
		fmt.Fprintf(&peers, "    - {address: \"127.0.0.1:%d\", name: p%d}\n", port, i)
		fmt.Fprintf(&targets, "    - {host: 127.77.%d.%d}\n", i/250, i%250+1)
	}
	specs := []struct{ name, cfg, coll string }{
		{"mesh prober (udp)", peers.String(), "mesh"},
		{"mesh responder", respCfg, "mesh"},
		{"ping", targets.String(), "ping"},
		{"floor (libraries alone)", "", ""},
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			p.cmd.Wait()
			p.log.Close()
		}
	}()
	for i, s := range specs {
		cfg := filepath.Join(tmp, fmt.Sprintf("c%d-%d.yml", n, i))
		if err := os.WriteFile(cfg, []byte(s.cfg), 0o644); err != nil {
			return cpuFrac, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", mustPort())
		log, _ := os.Create(filepath.Join(tmp, fmt.Sprintf("log%d-%d", n, i)))
		cmd := exec.Command(bin, "--web.listen-address="+addr, "--config.file="+cfg, "--collector.disable-defaults", "--collector."+s.coll)
		if s.coll == "" {
			cmd = exec.Command(filepath.Join(tmp, "floor"), "--web.listen-address="+addr, "--scrape.collect")
		}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return cpuFrac, err
		}
		procs = append(procs, &proc{name: s.name, cmd: cmd, addr: addr, log: log})
	}
	time.Sleep(warmup)
	cpu0, rep0 := make([]int64, len(procs)), make([]float64, len(procs))
	startHWM := make([]float64, len(procs))
	for i, p := range procs {
		startHWM[i] = memory(p.cmd.Process.Pid)["VmHWM"]
		// From here VmHWM is the peak of the window and its scrapes alone.
		os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
		cpu0[i] = cpuNS(p.cmd.Process.Pid)
		rep0[i] = replies(p.addr)
	}
	start := time.Now()
	time.Sleep(window)
	el := time.Since(start)
	cpu, perPeer, rate := make([]float64, len(procs)), make([]float64, len(procs)), make([]float64, len(procs))
	for i, p := range procs {
		cpu[i] = float64(cpuNS(p.cmd.Process.Pid)-cpu0[i]) / float64(el)
		perPeer[i] = cpu[i] * 1e6 / float64(n) // µs of CPU per second per peer
		rate[i] = (replies(p.addr) - rep0[i]) / el.Seconds()
		for range endScrapes - 1 {
			replies(p.addr)
		}
	}
	// The exporter returns a scrape's garbage to the kernel right after it:
	// RSS is read once that is done, VmHWM keeps the scrapes' peak.
	time.Sleep(time.Second)
	mem := make([]map[string]float64, len(procs))
	for i, p := range procs {
		mem[i] = memory(p.cmd.Process.Pid)
		fmt.Printf("%6d  %-22s %8.3f%% %14.2f %12.0f %8.1f %10.1f %11.1f %9.1f %10.1f\n", n, p.name, 100*cpu[i], perPeer[i], rate[i],
			mem[i]["VmRSS"]/1024, startHWM[i]/1024, mem[i]["VmHWM"]/1024, mem[i]["RssAnon"]/1024, mem[i]["RssAnon"]/float64(n))
	}
	if n == 300 {
		rss, hwm := mem[0]["VmRSS"]/1024, max(startHWM[0], mem[0]["VmHWM"])/1024
		verdict := map[bool]string{true: "PASS", false: "FAIL"}[rss <= 25 && hwm <= 25]
		floor := max(startHWM[3], mem[3]["VmHWM"]) / 1024
		fmt.Printf("%6d  %s  mesh prober, 300 peers ≤ 25 MB RSS (issue 18): %.1f MB at rest, %.1f MB peak (start-up and scrapes); floor %.1f MB peak\n", n, verdict, rss, hwm, floor)
	}
	ratio := func(k string) float64 { return mem[0][k] / mem[2][k] }
	fmt.Printf("%6d  mesh prober / ping per target: CPU %.2f× (prober + responder %.2f×), RSS %.2f×, VmHWM %.2f×, RssAnon %.2f×\n\n",
		n, perPeer[0]/perPeer[2], (perPeer[0]+perPeer[1])/perPeer[2], ratio("VmRSS"), ratio("VmHWM"), ratio("RssAnon"))
	copy(cpuFrac[:], cpu) // prober, responder, ping
	return cpuFrac, nil
}

// cpuNS sums the run time of all the process's threads.
func cpuNS(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			sum += v
		}
	}
	return sum
}

// memory reads the kB figures of /proc/PID/status: VmRSS, VmHWM (peak
// RSS), RssAnon (the heap and stacks, without the mapped binary).
func memory(pid int) map[string]float64 {
	m := map[string]float64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(v, " kB") {
			m[k], _ = strconv.ParseFloat(strings.Fields(v)[0], 64)
		}
	}
	return m
}

// replies sums every received counter of the exporter (probe replies for the
// prober and ping, replies sent for the responder).
func replies(addr string) float64 {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "smokemon_mesh_received_total") || strings.HasPrefix(l, "smokemon_ping_received_total") || strings.HasPrefix(l, "smokemon_mesh_responder_replies_total") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func mustPort() int {
	p, err := testutil.LoopbackPort()
	if err != nil {
		panic(err)
	}
	return p
}
