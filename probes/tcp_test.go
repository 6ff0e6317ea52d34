package probes

import (
	"fmt"
	"net"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/internal/lab"
)

// TCP connect time against the lab's delay element: 10 ms towards the
// destination and 5 ms back add 15 ms to the handshake. The median of 9
// probes minus the median of 9 without delay must be within 1 ms of 15 ms.
// A closed port counts as refused, a route marked unreachable as unreachable.
func TestTCPInLab(t *testing.T) {
	tp := lab.Topology(t)
	dst := tp.Dst[0]
	ip := tp.Addr(dst, false).String()
	delay := tp.Delay(t)
	ln, err := dst.Listen("tcp", net.JoinHostPort(ip, "7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	tp.Client.MustRun(t, "ip", "route", "add", "unreachable", "198.19.99.0/24")
	deps := svcDeps(t, tp.Client, "")
	c := svcCollector(t, newTCPCollector, deps, fmt.Sprintf(`
tcp:
  interval: 250ms
  timeout: 240ms
  targets:
    - {address: "%[1]s:7000", name: open}
    - {address: "%[1]s:7001", name: closed}
    - {address: "198.19.99.1:80", name: noroute}
    - {address: "[%[2]s]:7001", name: closed6}
`, ip, tp.Addr(dst, true)))
	sel := map[string][]string{"open": {"target=open"}}
	const n = 9
	// A machine stalling for milliseconds moves connect times by as much as
	// the tolerance; Tries retries a try its stall watchdog caught.
	lab.Tries(t, "tcp connect delay", func() error {
		return svcInjectedDelay(t, c, "smokemon_tcp_connect_duration_seconds", n, sel, func() {
			delay.Up.Set(lab.DelayParams{})
			delay.Down.Set(lab.DelayParams{})
		}, func() {
			delay.Up.Set(lab.DelayParams{Delay: 10 * time.Millisecond})
			delay.Down.Set(lab.DelayParams{Delay: 5 * time.Millisecond})
		}, map[string]time.Duration{"open": 15 * time.Millisecond}, time.Millisecond)
	})
	mfs := svcWait(t, c, "failures", 5*time.Second, func(m []*dto.MetricFamily) bool {
		return svcValue(m, "smokemon_tcp_probes_total", "target=noroute") >= 3 && svcValue(m, "smokemon_tcp_probes_total", "target=closed6") >= 3
	})
	for _, tc := range []struct{ name, reason string }{{"closed", "refused"}, {"closed6", "refused"}, {"noroute", "unreachable"}} {
		p := svcValue(mfs, "smokemon_tcp_probes_total", "target="+tc.name)
		if f := svcValue(mfs, "smokemon_tcp_failures_total", "target="+tc.name, "reason="+tc.reason); f != p {
			t.Errorf("%s: %v probes, %v failures with reason %s (failures by reason %v)", tc.name, p, f, tc.reason,
				svcFailuresByReason(mfs, "smokemon_tcp", tc.name, tcpReasons))
		}
		if v := svcValue(mfs, "smokemon_tcp_success", "target="+tc.name); v != 0 {
			t.Errorf("%s: success %v", tc.name, v)
		}
	}
	if v := svcValue(mfs, "smokemon_tcp_success", "target=open"); v != 1 {
		t.Errorf("open: success %v", v)
	}
	if svcFind(mfs, "smokemon_tcp_target_info", "target=closed6", "ip="+tp.Addr(dst, true).String()) == nil {
		t.Error("closed6: target_info lacks the IPv6 address")
	}
	svcPromtool(t, mfs)
}
