package prober

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/testutil"
)

func TestParseIperf3Fixtures(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "iperf3", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Real iperf3 3.12 output against a 20 Mbit/s tbf: the receiver's figure
	// is taken, and in reverse mode the server's retransmits arrive in sum_sent.
	for _, tc := range []struct {
		file        string
		bytesPerSec float64
		retrans     float64
	}{
		{"download.json", 19222494.65032098 / 8, 1953},
		{"upload.json", 19027090.431771215 / 8, 246},
	} {
		r, reason, msg := ParseIperf3(read(tc.file), nil)
		if r == nil {
			t.Fatalf("%s: %s %s", tc.file, reason, msg)
		}
		if r.BytesPerSecond != tc.bytesPerSec || r.Retransmits != tc.retrans {
			t.Errorf("%s: %v B/s, %v retransmits; want %v, %v", tc.file, r.BytesPerSecond, r.Retransmits, tc.bytesPerSec, tc.retrans)
		}
	}
	for _, tc := range []struct {
		out    []byte
		err    error
		reason string
	}{
		{read("busy.json"), nil, Iperf3ServerBusy},
		{read("refused.json"), nil, Iperf3Unreachable},
		{read("connect-timeout.json"), nil, Iperf3Timeout},
		{[]byte(`{"start":{}, "end":{}}`), nil, Iperf3Parse},
		{[]byte(`{"end":{"sum_received":{"seconds":0}}}`), nil, Iperf3Parse},
		{[]byte(`iperf3: error - the server`), nil, Iperf3Parse},
		{nil, &exec.Error{Name: "iperf3", Err: exec.ErrNotFound}, Iperf3Other},
		{nil, errors.New("signal: segmentation fault"), Iperf3Other},
		{[]byte(`{"error":"control socket has closed unexpectedly"}`), nil, Iperf3Other},
		{[]byte(`{"error":"unable to connect to server: No route to host"}`), nil, Iperf3Unreachable},
	} {
		if r, reason, _ := ParseIperf3(tc.out, tc.err); r != nil || reason != tc.reason {
			t.Errorf("%.40q: result %v reason %q, want %q", tc.out, r, reason, tc.reason)
		}
	}
}

// A real iperf3 client against a real iperf3 server on loopback: upload and
// download both yield a throughput, and a port nobody serves is unreachable.
func TestRunIperf3Loopback(t *testing.T) {
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		t.Skip("iperf3 not installed (Debian package iperf3)")
	}
	port := testutil.FreePort(t)
	srv := exec.Command(bin, "-s", "-B", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	cfg := config.BandwidthTarget{Server: fmt.Sprintf("127.0.0.1:%d", port), Duration: config.Duration(time.Second),
		Parallel: 1, ConnectTimeout: config.Duration(2 * time.Second), Family: config.FamilyIP4}
	for _, dir := range []string{config.DirectionUpload, config.DirectionDownload} {
		var res *Iperf3Result
		var reason, msg string
		// The server may take a moment to listen, and answers one test at a time.
		testutil.Eventually(5*time.Second, 100*time.Millisecond, func() bool {
			out, runErr := RunIperf3(ctxTimeout(t, 10*time.Second), bin, &cfg, dir)
			res, reason, msg = ParseIperf3(out, runErr)
			return reason != Iperf3Unreachable && reason != Iperf3ServerBusy
		})
		if res == nil || res.BytesPerSecond <= 0 {
			t.Errorf("%s: %v, %s: %s", dir, res, reason, msg)
		}
	}
	cfg.Server = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	out, runErr := RunIperf3(ctxTimeout(t, 10*time.Second), bin, &cfg, config.DirectionUpload)
	if res, reason, msg := ParseIperf3(out, runErr); res != nil || reason != Iperf3Unreachable {
		t.Errorf("nobody serving: %v, %s: %s", res, reason, msg)
	}
}
