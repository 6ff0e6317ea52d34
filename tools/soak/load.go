package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

// exporter is the running smokemon_exporter under soak.
type exporter struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	done    chan struct{}
}

func startExporter(o options, e *env, dir string) (*exporter, error) {
	flags, err := allCollectors(o.bin)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "soak.yml")
	if err := os.WriteFile(cfg, []byte(e.config(o.targets)), 0o644); err != nil {
		return nil, err
	}
	port, err := testutil.LoopbackPort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"--config.file=" + cfg, "--web.listen-address=" + addr}, flags...)
	args = append(args, strings.Fields(o.extra)...)
	x := &exporter{url: "http://" + addr, logPath: filepath.Join(dir, "exporter.log"), done: make(chan struct{})}
	logf, err := os.Create(x.logPath)
	if err != nil {
		return nil, err
	}
	x.cmd = exec.Command(o.bin, args...)
	x.cmd.Stdout, x.cmd.Stderr = logf, logf
	x.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := x.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { x.cmd.Wait(); logf.Close(); close(x.done) }()
	if !testutil.Eventually(30*time.Second, 200*time.Millisecond, func() bool {
		_, err := scrape(http.DefaultClient, x.url+"/metrics")
		return err == nil || x.exited()
	}) || x.exited() {
		x.stop()
		return nil, fmt.Errorf("the exporter did not answer within 30s: %s", x.tail())
	}
	return x, nil
}

func (x *exporter) pid() int { return x.cmd.Process.Pid }

func (x *exporter) exited() bool {
	select {
	case <-x.done:
		return true
	default:
		return false
	}
}

func (x *exporter) stop() {
	if !x.exited() {
		x.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-x.done:
		case <-time.After(5 * time.Second):
			x.cmd.Process.Kill()
			<-x.done
		}
	}
}

func (x *exporter) logLines() int {
	b, _ := os.ReadFile(x.logPath)
	return bytes.Count(b, []byte("\n"))
}

func (x *exporter) tail() string {
	b, _ := os.ReadFile(x.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// load is the soak's clients: the main scraper, whose bodies give the
// goroutine count and heap, extra scrapers, and clients that hang up
// mid-body.
type load struct {
	url                 string
	ok, failed, hangups atomic.Int64

	mu sync.Mutex
	// The goroutine count's range over the main scraper's bodies since
	// the last sample: the minimum is the count between bursts of work
	// (scrapes in flight, probe rounds), which a leak raises.
	gMin, gMax      float64
	heapUsed, bytes float64 // from the last good body
	lastErr         string
}

func newLoad(base string) *load {
	return &load{url: base + "/metrics", gMin: math.Inf(1), gMax: math.Inf(-1)}
}

// window returns the goroutine range since the last call and starts a new one.
func (l *load) window() (lo, hi float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lo, hi = l.gMin, l.gMax
	l.gMin, l.gMax = math.Inf(1), math.Inf(-1)
	if math.IsInf(lo, 0) {
		return nan, nan
	}
	return lo, hi
}

func (l *load) run(ctx context.Context, scrapers int) {
	client := &http.Client{Timeout: 10 * time.Second}
	go l.every(ctx, time.Second, func() {
		body, err := l.count(client)
		if err == nil {
			g := metricValue(body, "go_goroutines")
			l.mu.Lock()
			l.gMin, l.gMax = math.Min(l.gMin, g), math.Max(l.gMax, g)
			l.heapUsed, l.bytes = metricValue(body, "go_memstats_heap_inuse_bytes"), float64(len(body))
			l.mu.Unlock()
		}
	})
	for i := range scrapers {
		time.Sleep(time.Duration(i+1) * 300 * time.Millisecond) // spread them over the second
		go l.every(ctx, 2*time.Second, func() { l.count(client) })
	}
	l.every(ctx, 3*time.Second, l.hangup)
}

func (l *load) every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func (l *load) count(client *http.Client) ([]byte, error) {
	body, err := scrape(client, l.url)
	if err != nil {
		l.failed.Add(1)
		l.mu.Lock()
		l.lastErr = err.Error()
		l.mu.Unlock()
		return nil, err
	}
	l.ok.Add(1)
	return body, nil
}

// hangup asks for /metrics, reads the headers and the first few hundred
// bytes, and closes the connection, as Prometheus does on a scrape timeout.
func (l *load) hangup() {
	u, _ := url.Parse(l.url)
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: identity\r\n\r\n", u.Path, u.Host)
	io.ReadFull(bufio.NewReader(c), make([]byte, 512))
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // a reset, so the exporter sees the hang-up mid-write
	}
	l.hangups.Add(1)
}

func scrape(client *http.Client, u string) ([]byte, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return body, nil
}

// metricValue is the value of an unlabelled sample in a text exposition,
// NaN when absent.
func metricValue(body []byte, name string) float64 {
	for line := range bytes.Lines(body) {
		rest, ok := bytes.CutPrefix(line, []byte(name+" "))
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(string(rest)), 64)
		if err == nil {
			return v
		}
	}
	return nan
}
