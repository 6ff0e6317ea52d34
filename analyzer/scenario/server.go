package scenario

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
	"github.com/smokemon/smokemon/internal/upstream"
)

// Server is a real TSDB (Prometheus or VictoriaMetrics) on a loopback port.
type Server struct {
	URL  string
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

// Backfill turns an OpenMetrics file into TSDB blocks in dataDir. promtool
// (2.42) reads its whole input once per 2h block, so a week of history is
// first split into one file per 2h window: one pass over the data in total.
func Backfill(openmetrics, dataDir string) error {
	parts, err := splitBlocks(openmetrics)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range parts {
			os.Remove(p)
		}
	}()
	promtool := UpstreamOr("promtool")
	errs := make(chan error, len(parts))
	sem := make(chan struct{}, 2)
	for _, p := range parts {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", p, dataDir).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("promtool backfill %s: %v: %s", p, err, lastLines(out, 20))
			}
			errs <- err
		}()
	}
	for range parts {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// splitBlocks splits an OpenMetrics file (families contiguous) by 2h-aligned
// sample time, keeping each family's TYPE line in every part.
func splitBlocks(path string) ([]string, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	type part struct {
		f      *os.File
		w      *bufio.Writer
		family string
	}
	parts := map[int64]*part{}
	var names []string
	typeLine := ""
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE") {
			typeLine = line
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		ts, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad timestamp in %q", path, line)
		}
		k := int64(ts) / 7200
		p := parts[k]
		if p == nil {
			f, err := os.Create(fmt.Sprintf("%s.%d", path, k))
			if err != nil {
				return nil, err
			}
			p = &part{f: f, w: bufio.NewWriterSize(f, 1<<16)}
			parts[k] = p
			names = append(names, f.Name())
		}
		if p.family != typeLine {
			p.w.WriteString(typeLine)
			p.w.WriteByte('\n')
			p.family = typeLine
		}
		p.w.WriteString(line)
		p.w.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, p := range parts {
		p.w.WriteString("# EOF\n")
		if err := p.w.Flush(); err != nil {
			return nil, err
		}
		p.f.Close()
	}
	return names, nil
}

// UpstreamOr returns the current release of binary that .ci/upstream built,
// else Debian's (on $PATH), saying so on stderr.
func UpstreamOr(binary string) string {
	p, err := upstream.Path(binary)
	if err != nil {
		fmt.Fprintf(os.Stderr, "scenario: %v; using Debian's %s\n", err, binary)
		return binary
	}
	return p
}

// StartPrometheus serves dataDir (backfilled blocks) without scraping anything.
func StartPrometheus(dataDir string) (*Server, error) {
	port, err := testutil.LoopbackPort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(dataDir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\nscrape_configs: []\n"), 0o644); err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + addr, logs: &bytes.Buffer{}}
	s.cmd = exec.Command(UpstreamOr("prometheus"), "--config.file="+cfg, "--storage.tsdb.path="+dataDir,
		"--storage.tsdb.retention.time=3650d", "--web.listen-address="+addr, "--query.max-samples=200000000")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	return s, s.wait("/-/ready", 60*time.Second)
}

// StartVictoriaMetrics starts a single-node VictoriaMetrics on dataDir, with
// extra flags after the defaults.
func StartVictoriaMetrics(bin, dataDir string, extra ...string) (*Server, error) {
	port, err := testutil.LoopbackPort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &Server{URL: "http://" + addr, logs: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, append([]string{"-storageDataPath=" + dataDir, "-httpListenAddr=" + addr, "-retentionPeriod=100y",
		"-search.latencyOffset=0s", "-search.disableCache", "-search.maxUniqueTimeseries=10000000", "-search.maxSamplesPerQuery=2000000000"}, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	return s, s.wait("/health", 30*time.Second)
}

// Import posts Prometheus text (millisecond timestamps) to VictoriaMetrics and flushes it.
func (s *Server) Import(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	resp, err := http.Post(s.URL+"/api/v1/import/prometheus", "text/plain", f)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("import: %s", resp.Status)
	}
	resp, err = http.Get(s.URL + "/internal/force_flush")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (s *Server) wait(path string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for ctx.Err() == nil {
		if s.cmd.ProcessState != nil {
			break
		}
		resp, err := http.Get(s.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop()
	return errors.New("server did not become ready: " + lastLines(s.logs.Bytes(), 20))
}

// Stop ends the server process.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// Logs returns what the server printed.
func (s *Server) Logs() string { return s.logs.String() }

func lastLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// PID is the server's process id (benches read its CPU time from /proc).
func (s *Server) PID() int { return s.cmd.Process.Pid }
