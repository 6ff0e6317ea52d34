package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
	"github.com/smokemon/smokemon/internal/testutil"
)

// meshNode runs the real binary with a mesh config inside a lab host.
func meshNode(t *testing.T, h *lab.Host, cfg string) *exporter {
	t.Helper()
	path := writeFile(t, t.TempDir(), "c.yml", cfg)
	return labExporter(t, h, nil, "--config.file="+path, "--collector.disable-defaults", "--collector.mesh")
}

const meshResponder = "  responder: {udp_port: 9918, tcp_port: 9918}\n"

// meshSnap is a peer's figures from one scrape.
type meshSnap struct{ body string }

func (s meshSnap) get(metric, labels string) float64 {
	return sample(s.body, metric+"{"+labels+"}")
}

// mean of a histogram between two scrapes.
func histMean(a, b meshSnap, metric, labels string) (float64, float64) {
	n := b.get(metric+"_count", labels) - a.get(metric+"_count", labels)
	return (b.get(metric+"_sum", labels) - a.get(metric+"_sum", labels)) / n, n
}

// Three nodes behind the lab's ISP router, whose delay element holds packets
// towards the destinations (client → a, b) for Up and towards the client
// (and between a and b) for Down. Symmetric first: the clock offset between
// the nodes (one kernel, one clock) must read ~0. Then 20 ms up, 5 ms down:
// RTT 25 ms, and each direction's one-way delay on the right side, from
// both ends.
func TestMeshDelayInLab(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t, "a", "b")
	d := tp.Delay(t)
	d.Up.Set(lab.DelayParams{Delay: 10 * time.Millisecond})
	d.Down.Set(lab.DelayParams{Delay: 10 * time.Millisecond})
	cl, a, b := tp.Addr(tp.Client, false), tp.Addr(tp.Dst[0], false), tp.Addr(tp.Dst[1], false)
	common := "global: {labels: {site: lab}}\nmesh:\n" + meshResponder + "  interval: 20ms\n  timeout: 500ms\n"
	ec := meshNode(t, tp.Client, common+fmt.Sprintf("  peers:\n    - {address: \"%s:9918\", name: a, protocols: [udp, tcp, tcp_connect]}\n    - {address: \"%s:9918\", name: b}\n", a, b))
	ea := meshNode(t, tp.Dst[0], common+fmt.Sprintf("  peers:\n    - {address: \"%s:9918\", name: client}\n", cl))
	eb := meshNode(t, tp.Dst[1], common+fmt.Sprintf("  peers:\n    - {address: \"%s:9918\", name: a}\n", a))
	snap := func(e *exporter) meshSnap { return meshSnap{e.scrape(t)} }
	lbl := func(peer string, kv ...string) string {
		l := []string{}
		for i := 0; i+1 < len(kv); i += 2 {
			l = append(l, fmt.Sprintf(`%s="%s"`, kv[i], kv[i+1]))
		}
		l = append(l, fmt.Sprintf(`peer="%s"`, peer), `site="lab"`)
		// Labels come out sorted; callers pass the ones sorting before "peer".
		return strings.Join(l, ",")
	}
	ms := func(v float64) string { return fmt.Sprintf("%.3fms", v*1e3) }

	time.Sleep(3 * time.Second)
	c1, a1, b1 := snap(ec), snap(ea), snap(eb)
	for _, x := range []struct {
		who  string
		s    meshSnap
		peer string
	}{{"client", c1, "a"}, {"client", c1, "b"}, {"a", a1, "client"}, {"b", b1, "a"}} {
		off, unc, trust := x.s.get("smokemon_mesh_clock_offset_seconds", lbl(x.peer)), x.s.get("smokemon_mesh_clock_offset_uncertainty_seconds", lbl(x.peer)), x.s.get("smokemon_mesh_clock_trustworthy", lbl(x.peer))
		t.Logf("symmetric 10/10 ms: %s → %s: clock offset %s ± %s, trustworthy %v", x.who, x.peer, ms(off), ms(unc), trust)
		if math.Abs(off) > 1e-3 || trust != 1 || unc < 9.5e-3 || unc > 13e-3 {
			t.Errorf("%s → %s, symmetric path, one clock: offset %s ± %s trustworthy %v; want ~0 ± ~10ms, 1", x.who, x.peer, ms(off), ms(unc), trust)
		}
	}

	d.Up.Set(lab.DelayParams{Delay: 20 * time.Millisecond})
	d.Down.Set(lab.DelayParams{Delay: 5 * time.Millisecond})
	time.Sleep(700 * time.Millisecond) // probes in flight at the switch settle
	var c3 meshSnap
	// The delay element runs in user space: a machine too loaded to
	// schedule it on time makes every path late at once, which Tries tells
	// apart from the probes' own error by its stall watchdog.
	lab.Tries(t, "mesh delays 20/5 ms", func() error {
		c2, a2, b2 := snap(ec), snap(ea), snap(eb)
		time.Sleep(4 * time.Second)
		var a3, b3 meshSnap
		c3, a3, b3 = snap(ec), snap(ea), snap(eb)
		var errs []error
		check := func(what string, got, want, n float64) {
			t.Logf("%s: mean %s over %v samples (programmed %s)", what, ms(got), n, ms(want))
			// The delay element never releases early; late by its own error,
			// veth hops and a loaded machine's scheduling.
			if !(n >= 100) || !(got >= want-0.3e-3 && got <= want+4e-3) {
				errs = append(errs, fmt.Errorf("%s: mean %s over %v samples, want %s (+4ms)", what, ms(got), n, ms(want)))
			}
		}
		oneWay := "smokemon_mesh_one_way_delay_seconds"
		for _, x := range []struct {
			who, peer string
			s0, s1    meshSnap
			fwd, ret  float64
		}{
			{"client", "a", c2, c3, 20e-3, 5e-3},
			{"client", "b", c2, c3, 20e-3, 5e-3},
			{"a", "client", a2, a3, 5e-3, 20e-3},
			{"b", "a", b2, b3, 5e-3, 5e-3},
		} {
			rtt, n := histMean(x.s0, x.s1, "smokemon_mesh_rtt_seconds", fmt.Sprintf(`peer="%s",protocol="udp",site="lab"`, x.peer))
			check(x.who+" → "+x.peer+" udp rtt", rtt, x.fwd+x.ret, n)
			f, n := histMean(x.s0, x.s1, oneWay, `direction="forward",`+lbl(x.peer))
			check(x.who+" → "+x.peer+" forward", f, x.fwd, n)
			r, n := histMean(x.s0, x.s1, oneWay, `direction="return",`+lbl(x.peer))
			check(x.who+" → "+x.peer+" return", r, x.ret, n)
			off := x.s1.get("smokemon_mesh_clock_offset_seconds", lbl(x.peer))
			unc := x.s1.get("smokemon_mesh_clock_offset_uncertainty_seconds", lbl(x.peer))
			trust := x.s1.get("smokemon_mesh_clock_trustworthy", lbl(x.peer))
			// Two-way timestamps read half the asymmetry as offset; zero (the
			// truth) must stay inside the interval, so the clocks stay trusted.
			wantOff := (x.fwd - x.ret) / 2
			t.Logf("%s → %s: clock offset %s ± %s (asymmetry/2 = %s), trustworthy %v", x.who, x.peer, ms(off), ms(unc), ms(wantOff), trust)
			if math.Abs(off-wantOff) > 1e-3 || trust != 1 || math.Abs(off) > unc {
				errs = append(errs, fmt.Errorf("%s → %s: offset %s ± %s trustworthy %v", x.who, x.peer, ms(off), ms(unc), trust))
			}
		}
		for _, proto := range []string{"tcp", "tcp_connect"} {
			rtt, n := histMean(c2, c3, "smokemon_mesh_rtt_seconds", `peer="a",protocol="`+proto+`",site="lab"`)
			check("client → a "+proto+" rtt", rtt, 25e-3, n)
		}
		return errors.Join(errs...)
	})
	if v := c3.get("smokemon_mesh_tcp_reconnects_total", lbl("a")); v != 0 {
		t.Errorf("tcp reconnects on a clean path: %v", v)
	}
	promtool(t, c3.body)
}

func promtool(t *testing.T, body string) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus); skipping the metrics check")
		return
	}
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// The ISP drops 30% of the client's requests to a, and 20% of the client
// responder's replies to a: the client's probes of a lose forward, a's
// probes of the client lose on the return, each at its own rate.
func TestMeshLossDirectionInLab(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t, "a")
	cl, a := tp.Addr(tp.Client, false), tp.Addr(tp.Dst[0], false)
	tp.ISP.DropRandom(t, 0.30, fmt.Sprintf("ip daddr %s udp dport 9918", a))
	tp.ISP.DropRandom(t, 0.20, fmt.Sprintf("ip daddr %s udp sport 9918", a))
	common := "mesh:\n" + meshResponder + "  interval: 10ms\n  timeout: 200ms\n"
	ec := meshNode(t, tp.Client, common+fmt.Sprintf("  peers:\n    - {address: \"%s:9918\", name: a}\n", a))
	ea := meshNode(t, tp.Dst[0], common+fmt.Sprintf("  peers:\n    - {address: \"%s:9918\", name: client}\n", cl))
	time.Sleep(12 * time.Second)
	for _, x := range []struct {
		who, peer string
		e         *exporter
		fwd, ret  float64
	}{{"client", "a", ec, 0.30, 0}, {"a", "client", ea, 0, 0.20}} {
		body := x.e.scrape(t)
		get := func(m, extra string) float64 {
			return sample(body, fmt.Sprintf(`%s{%speer="%s",protocol="udp"}`, m, extra, x.peer))
		}
		sent, recv := get("smokemon_mesh_sent_total", ""), get("smokemon_mesh_received_total", "")
		lf, lr, lu := get("smokemon_mesh_lost_total", `direction="forward",`), get("smokemon_mesh_lost_total", `direction="return",`), get("smokemon_mesh_lost_total", `direction="unknown",`)
		n := lf + lr + lu + recv // settled probes
		t.Logf("%s → %s: sent %v received %v lost forward %v return %v unknown %v", x.who, x.peer, sent, recv, lf, lr, lu)
		if n < 800 || sent-n > 80 {
			t.Fatalf("%s → %s: %v of %v probes settled", x.who, x.peer, n, sent)
		}
		for _, c := range []struct {
			dir           string
			lost, p       float64
			conditionalOn float64 // probes that could be lost this way
		}{{"forward", lf, x.fwd, n}, {"return", lr, x.ret, n - lf}} {
			ratio := c.lost / c.conditionalOn
			tol := 4.5*math.Sqrt(math.Max(c.p*(1-c.p), 0.01*0.99)/c.conditionalOn) + 0.002
			t.Logf("  %s loss %.3f (programmed %.2f ± %.3f)", c.dir, ratio, c.p, tol)
			if math.Abs(ratio-c.p) > tol {
				t.Errorf("%s → %s: %s loss %.3f, want %.2f ± %.3f", x.who, x.peer, c.dir, ratio, c.p, tol)
			}
		}
		if lu > 0.01*n {
			t.Errorf("%s → %s: %v losses of unknown direction", x.who, x.peer, lu)
		}
	}
}

// peers_file: a peer added by rewriting the file is probed; a broken file
// keeps the previous list and the log names the file and line. The responder
// of the real binary ignores junk and answers a probe with no more bytes.
func TestMeshPeersFileReloadAndResponder(t *testing.T) {
	dir := t.TempDir()
	port := strconv.Itoa(testutil.FreePort(t))
	writeFile(t, dir, "peers.yml", fmt.Sprintf("- {address: \"127.0.0.1:%s\", name: one}\n", port))
	cfg := writeFile(t, dir, "c.yml", fmt.Sprintf("mesh:\n  responder: {listen: 127.0.0.1, udp_port: %s, tcp_port: %s}\n  interval: 100ms\n  peers_file: peers.yml\n", port, port))
	e := start(t, "--config.file="+cfg, "--collector.disable-defaults", "--collector.mesh")
	time.Sleep(600 * time.Millisecond)
	if v := sample(e.scrape(t), `smokemon_mesh_received_total{peer="one",protocol="udp"}`); !(v >= 2) {
		t.Fatalf("peer one from the file: %v replies", v)
	}

	writeFile(t, dir, "peers.yml", fmt.Sprintf("- {address: \"127.0.0.1:%s\", name: one}\n- {address: \"127.0.0.1:%s\", name: two, protocols: [udp, tcp]}\n", port, port))
	time.Sleep(2 * time.Second)
	body := e.scrape(t)
	for _, p := range []string{"udp", "tcp"} {
		if v := sample(body, `smokemon_mesh_received_total{peer="two",protocol="`+p+`"}`); !(v >= 2) {
			t.Errorf("peer two (%s) added to the file: %v replies", p, v)
		}
	}
	before := sample(body, `smokemon_mesh_sent_total{peer="two",protocol="udp"}`)

	writeFile(t, dir, "peers.yml", fmt.Sprintf("- {address: \"127.0.0.1:%s\", name: one}\n- {address: \"127.0.0.1\", name: two}\n", port))
	time.Sleep(2 * time.Second)
	body = e.scrape(t)
	if v := sample(body, "smokemon_mesh_peers_file_last_reload_successful"); v != 0 {
		t.Errorf("after a broken peers file, last_reload_successful = %v", v)
	}
	if v := sample(body, `smokemon_mesh_sent_total{peer="two",protocol="udp"}`); !(v > before+5) {
		t.Errorf("peer two stopped after a broken peers file: %v -> %v", before, v)
	}
	if log := e.out.String(); !strings.Contains(log, "peers.yml:2: peers[1].address") {
		t.Errorf("log does not name the file, line and field:\n%s", log)
	}
	promtool(t, body)

	// The real binary's responder: junk gets nothing, a probe gets no more.
	c, err := net.Dial("udp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	c.Write([]byte("\x00\x01 not a probe, please amplify me"))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Errorf("junk answered with %d bytes", n)
	}
	req := make([]byte, 100)
	copy(req, "SMKM\x01\x01\x00\x64\x00\x00\x00\x01\x00\x00\x00\x01")
	c.Write(req)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(buf)
	if err != nil || n > len(req) || string(buf[:4]) != "SMKM" || buf[5] != 2 {
		t.Errorf("probe of %d bytes: reply %d bytes %q, %v", len(req), n, buf[:min(n, 8)], err)
	}
	if v := sample(e.scrape(t), `smokemon_mesh_responder_malformed_total{protocol="udp"}`); v != 1 {
		t.Errorf("responder malformed = %v", v)
	}
}
