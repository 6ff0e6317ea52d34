package prober

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smokemon/smokemon/internal/config"
)

// Why an iperf3 test fails: a bounded set, for a metric label.
const (
	Iperf3ServerBusy  = "server_busy"
	Iperf3Unreachable = "unreachable"
	Iperf3Timeout     = "timeout"
	Iperf3Parse       = "parse"
	Iperf3Other       = "other"
)

// Iperf3Reasons are all the reasons, in a stable order.
var Iperf3Reasons = []string{Iperf3ServerBusy, Iperf3Unreachable, Iperf3Timeout, Iperf3Parse, Iperf3Other}

// Iperf3Result is one successful test.
type Iperf3Result struct {
	BytesPerSecond float64 // the receiver's throughput
	Retransmits    float64 // by the sender; -1 when iperf3 did not report them
}

// RunIperf3 runs one client test of cfg in direction dir with the iperf3
// binary bin, and returns its JSON output. The process gets its own group,
// killed as a whole when ctx ends, and dies with the exporter (Pdeathsig).
func RunIperf3(ctx context.Context, bin string, cfg *config.BandwidthTarget, dir string) ([]byte, error) {
	host, port := cfg.HostPort()
	args := []string{"-c", host, "-p", strconv.Itoa(port), "-J",
		"-t", strconv.Itoa(int(time.Duration(cfg.Duration) / time.Second)),
		"-P", strconv.Itoa(cfg.Parallel),
		"--connect-timeout", strconv.FormatInt(time.Duration(cfg.ConnectTimeout).Milliseconds(), 10),
	}
	if dir == config.DirectionDownload {
		args = append(args, "-R")
	}
	if cfg.Congestion != "" {
		args = append(args, "-C", cfg.Congestion)
	}
	switch cfg.Family {
	case config.FamilyIP4:
		args = append(args, "-4")
	case config.FamilyIP6:
		args = append(args, "-6")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && stderr.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), err
}

type iperf3Sum struct {
	Seconds       float64  `json:"seconds"`
	Bytes         float64  `json:"bytes"`
	BitsPerSecond float64  `json:"bits_per_second"`
	Retransmits   *float64 `json:"retransmits"`
}

type iperf3Report struct {
	End struct {
		SumSent     *iperf3Sum `json:"sum_sent"`
		SumReceived *iperf3Sum `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// ParseIperf3 reads `iperf3 -J` output. iperf3 3.12 exits 0 even when the
// test failed, so the JSON error field decides, not the exit status.
// Throughput is the receiver's figure: the sender's counts bytes still queued
// when the test ended.
// It returns the result, or why the test failed and what iperf3 said.
func ParseIperf3(out []byte, runErr error) (res *Iperf3Result, reason, msg string) {
	var rep iperf3Report
	if err := json.Unmarshal(out, &rep); err != nil {
		if runErr != nil {
			if errors.Is(runErr, exec.ErrNotFound) || errors.Is(runErr, syscall.ENOENT) || errors.Is(runErr, syscall.EACCES) {
				return nil, Iperf3Other, fmt.Sprintf("cannot run iperf3 (set --collector.bandwidth.iperf3-path): %v", runErr)
			}
			return nil, Iperf3Other, runErr.Error()
		}
		return nil, Iperf3Parse, fmt.Sprintf("iperf3 output is not JSON: %v", err)
	}
	if rep.Error != "" {
		return nil, classifyIperf3Error(rep.Error), rep.Error
	}
	r := rep.End.SumReceived
	if r == nil || r.Seconds <= 0 || r.BitsPerSecond < 0 {
		return nil, Iperf3Parse, "iperf3 JSON has no end.sum_received"
	}
	res = &Iperf3Result{BytesPerSecond: r.BitsPerSecond / 8, Retransmits: -1}
	if s := rep.End.SumSent; s != nil && s.Retransmits != nil {
		res.Retransmits = *s.Retransmits
	}
	return res, "", ""
}

func classifyIperf3Error(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "busy"):
		return Iperf3ServerBusy
	case strings.Contains(m, "timed out"), strings.Contains(m, "timeout"):
		return Iperf3Timeout
	case strings.Contains(m, "unable to connect"), strings.Contains(m, "refused"),
		strings.Contains(m, "unreachable"), strings.Contains(m, "no route"),
		strings.Contains(m, "resolve"), strings.Contains(m, "name or service"):
		return Iperf3Unreachable
	}
	return Iperf3Other
}
