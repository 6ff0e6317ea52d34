package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clkTck is USER_HZ, which Linux fixes at 100 for every userspace ABI.
const clkTck = 100

// proc is one started tool.
type proc struct {
	name string
	cmd  *exec.Cmd
	errw *tail
	done chan struct{} // closed when the process has exited
	werr error
}

// tail keeps the last bytes a tool wrote, to explain a failure.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 4096; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// start runs a tool in its own process group, so a Ctrl-C at the terminal
// reaches the bench (which then stops the tools in order) rather than killing
// them mid-measurement; Pdeathsig still kills them if the bench itself dies.
func start(name string, stdout io.Writer, argv ...string) (*proc, error) {
	p := &proc{name: name, errw: &tail{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = stdout
	p.cmd.Stderr = p.errw
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		p.werr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) deathNote() string {
	return fmt.Sprintf("%s exited (%v); its last output:\n%s", p.name, p.werr, p.errw.String())
}

// stop asks politely (fping prints its buffered replies on SIGINT) and kills
// after a grace period, so no tool outlives the bench.
func (p *proc) stop(sig syscall.Signal) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 200, the process dies or ctx ends.
func waitHTTP(ctx context.Context, p *proc, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	// A generous per-request timeout: smokeping_prober with 1000 raw sockets
	// is so busy that a 1 s poll never gets an answer.
	c := &http.Client{Timeout: 10 * time.Second}
	for {
		if p.exited() {
			return errors.New(p.deathNote())
		}
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s within %v (last error: %v); its output:\n%s", p.name, url, limit, err, p.errw.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cpuSample is a process's CPU time at one instant, two ways: utime+stime
// from /proc/PID/stat (the whole process, dead threads included, 10 ms
// ticks) and the scheduler's run time summed over live threads (ns, exact,
// but loses threads that exited, which Go processes rarely do).
type cpuSample struct {
	at    time.Time
	ticks uint64
	schNS uint64
}

func readCPU(pid int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// comm may contain spaces and parentheses: fields count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return s, err
	}
	s.ticks = ut + st
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				if v, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					s.schNS += v
				}
			}
		}
	}
	return s, nil
}

// cpuPercent returns the share of one core used between a and b.
func cpuPercent(a, b cpuSample) (stat, sched float64) {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0, 0
	}
	stat = float64(b.ticks-a.ticks) / clkTck / wall * 100
	if b.schNS >= a.schNS {
		sched = float64(b.schNS-a.schNS) / 1e9 / wall * 100
	}
	return stat, sched
}

// readRSS returns VmHWM and VmRSS in bytes.
func readRSS(pid int) (hwm, rss uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(f[0], 10, 64)
		switch k {
		case "VmHWM":
			hwm = n * 1024
		case "VmRSS":
			rss = n * 1024
		}
	}
	if hwm == 0 || rss == 0 {
		return hwm, rss, fmt.Errorf("/proc/%d/status: no VmHWM/VmRSS", pid)
	}
	return hwm, rss, nil
}

// machineCPU is the busy and total jiffies of all CPUs, from /proc/stat: other
// work on the machine shifts every figure, so the report shows how busy it was.
func machineCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already inside user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}
