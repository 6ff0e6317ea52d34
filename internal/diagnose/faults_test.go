package diagnose

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
)

// fault is one injected problem and the verdict it must get.
type fault struct {
	name   string
	node   string   // "" = lab-a
	kinds  []string // any of these is the right kind (the first is named in the table)
	target string   // "" = node-wide
	origin int      // hop the path analysis must name; 0 = none (never a rate-limited hop)
	blame  string   // prefix of the top blame signal; "" = "no local cause"
	detect time.Duration
	hold   time.Duration // how long the fault lasts after detection
	inject func(r *rig) (undo func())
	fleet  string // scope/key of the fleet incident it must raise, "" = none
}

// row is one line of the score table.
type row struct {
	set, fault, want, got string
	kindOK, originOK      bool
	blameOK               string
	detect, endErr        time.Duration
	startErr              time.Duration
	detected, resolved    bool
	extra                 int
	notes                 string
}

var (
	tableMu sync.Mutex
	table   []row
)

func record(rw row) {
	tableMu.Lock()
	table = append(table, rw)
	tableMu.Unlock()
}

func yes(b bool) string {
	if b {
		return "ok"
	}
	return "WRONG"
}

func printTable() {
	tableMu.Lock()
	defer tableMu.Unlock()
	if len(table) == 0 {
		return
	}
	fmt.Println("\ndiagnosis score (5 s scrape, 10 s evaluation)")
	fmt.Printf("%-6s %-24s %-42s %-5s %-6s %-6s %8s %9s %9s %5s  %s\n", "set", "fault", "verdict", "kind", "origin", "blame", "detect", "start err", "end err", "extra", "got")
	for _, r := range table {
		det, start, end := "missed", "-", "-"
		if r.blameOK == "-" {
			det = "-"
		}
		if r.detected {
			det, start = fmt.Sprintf("%.0fs", r.detect.Seconds()), fmt.Sprintf("%+.0fs", r.startErr.Seconds())
		}
		if r.resolved {
			end = fmt.Sprintf("%+.0fs", r.endErr.Seconds())
		}
		fmt.Printf("%-6s %-24s %-42s %-5s %-6s %-6s %8s %9s %9s %5d  %s %s\n", r.set, r.fault, r.want, yes(r.kindOK), yes(r.originOK), r.blameOK, det, start, end, r.extra, r.got, r.notes)
	}
}

// run injects f, waits for its incident, holds, heals and scores.
func (r *rig) run(t *testing.T, set string, f fault) {
	node := f.node
	if node == "" {
		node = "lab-a"
	}
	if f.target == "$resolver" {
		f.target = r.dst + ":53"
	}
	want := f.want()
	rw := row{set: set, fault: f.name, want: want}
	at := time.Now()
	undo := f.inject(r)
	hit := r.awaitIncident(f, node, at)
	if hit == nil {
		undo()
		rw.got = describe(r.obs.since(at))
		record(rw)
		t.Errorf("%s: no %s incident within %v; got %s", f.name, want, f.detect+30*time.Second, rw.got)
		r.settle(t, at)
		return
	}
	rw.detected, rw.detect, rw.kindOK, rw.startErr = true, hit.first.Sub(at), true, hit.Start.Sub(at)
	if rw.detect > f.detect {
		r.timeline(t, node, f.target, at)
	}
	time.Sleep(f.hold)
	in := r.obs.get(hit.ID) // the verdict after it had time to settle
	got := f.judge(in, &rw)
	if f.fleet != "" {
		r.obs.mu.Lock()
		_, ok := r.obs.fleet[f.fleet]
		members := r.obs.members[f.fleet]
		r.obs.mu.Unlock()
		rw.notes = fmt.Sprintf("fleet %s %v", f.fleet, members)
		if !ok {
			rw.notes = "no fleet incident " + f.fleet
			t.Errorf("%s: no fleet incident %s", f.name, f.fleet)
		}
	}
	healed := time.Now()
	undo()
	r.awaitResolved(hit.ID, healed, &rw)
	if f.fleet != "" {
		rw.notes += r.fleetEnded(t, f.fleet, at, healed)
	}
	for _, s := range r.obs.since(at.Add(-2 * time.Second)) {
		// Other nodes with the same kind are the fault's reach (fleet), not noise.
		if s.ID != hit.ID && s.SupersededBy == "" && !contains(f.kinds, s.Kind) {
			rw.extra++
		}
	}
	record(rw)
	f.report(t, rw, in, got)
	r.settle(t, healed)
}

// want is the verdict the fault should get, as the table prints it.
func (f fault) want() string {
	want := f.kinds[0]
	if f.target != "" {
		want += "/" + f.target
	}
	if f.origin > 0 {
		want += fmt.Sprintf(" hop %d", f.origin)
	}
	if f.blame != "" {
		want += " ← " + f.blame
	} else {
		want += " ← no local cause"
	}
	return want
}

// awaitIncident polls for the fault's incident on node, begun since at; nil
// if none came within the fault's detection time and 30 s of slack.
func (r *rig) awaitIncident(f fault, node string, at time.Time) *seen {
	var hit *seen
	for time.Since(at) < f.detect+30*time.Second && hit == nil {
		time.Sleep(time.Second)
		for _, s := range r.obs.since(at.Add(-2 * time.Second)) {
			if s.Node == node && s.Active && s.Target == f.target && contains(f.kinds, s.Kind) {
				hit = &s
				break
			}
		}
	}
	return hit
}

// judge records in rw whether the settled incident in has the fault's origin
// hop and blame, and returns its top blame signal.
func (f fault) judge(in seen, rw *row) string {
	rw.originOK = in.OriginHop == f.origin
	got := "none"
	if len(in.Blame) > 0 {
		got = in.Blame[0].Signal
	}
	switch {
	case f.blame == "" && len(in.Blame) == 0 && (in.NoLocalCause || in.Kind == "dns-slow"):
		rw.blameOK = "ok"
	case f.blame != "" && strings.HasPrefix(got, f.blame):
		rw.blameOK = "ok"
	default:
		rw.blameOK = "WRONG"
	}
	rw.got = fmt.Sprintf("%s origin=%d blame=%s nolocal=%v", in.Kind, in.OriginHop, got, in.NoLocalCause)
	return got
}

// awaitResolved waits up to 120 s after healed for incident id to end.
func (r *rig) awaitResolved(id string, healed time.Time, rw *row) {
	for time.Since(healed) < 120*time.Second {
		time.Sleep(time.Second)
		if s := r.obs.get(id); !s.Active && !s.End.IsZero() {
			rw.resolved, rw.endErr = true, s.End.Sub(healed)
			return
		}
	}
}

// report fails t for each part of the verdict in rw the fault did not get.
func (f fault) report(t *testing.T, rw row, in seen, got string) {
	if !rw.originOK {
		t.Errorf("%s: origin hop %d, want %d", f.name, in.OriginHop, f.origin)
	}
	if rw.blameOK != "ok" {
		t.Errorf("%s: top blame %q (no_local_cause=%v), want %q", f.name, got, in.NoLocalCause, f.blame)
	}
	if rw.detect > f.detect {
		t.Errorf("%s: detected after %v, want ≤ %v", f.name, rw.detect.Round(time.Second), f.detect)
	}
	if !rw.resolved {
		t.Errorf("%s: not resolved 120s after healing", f.name)
	} else if rw.endErr < -step || rw.endErr > step {
		t.Errorf("%s: end dated %v off the heal, want within one step (%v)", f.name, rw.endErr, step)
	}
}

// fleetEnded waits for every fleet incident of scope/key since at to end
// explicitly (an end time, or superseded_by) and says when, against the heal.
func (r *rig) fleetEnded(t *testing.T, key string, at, healed time.Time) string {
	for time.Since(healed) < 150*time.Second {
		open, ends := 0, []string{}
		r.obs.mu.Lock()
		for _, f := range r.obs.fleetIDs {
			if f.Scope+"/"+f.Key != key || f.Start.Before(at.Add(-time.Minute)) {
				continue // another fault's
			}
			if f.Active || (f.End.IsZero() && f.SupersededBy == "") {
				open++
			} else {
				ends = append(ends, fmt.Sprintf("%+.0fs", f.End.Sub(healed).Seconds()))
			}
		}
		r.obs.mu.Unlock()
		if open == 0 && len(ends) > 0 {
			return ", fleet ended " + strings.Join(ends, " ")
		}
		time.Sleep(time.Second)
	}
	t.Errorf("fleet incident %s not ended 150 s after healing", key)
	return ", fleet NOT ENDED"
}

// settle waits until nothing is active, so the next fault starts clean.
func (r *rig) settle(t *testing.T, since time.Time) {
	for range 120 {
		active := false
		for _, s := range r.obs.since(since.Add(-time.Hour)) {
			active = active || s.Active
		}
		if !active {
			time.Sleep(15 * time.Second) // the rate window forgets the fault
			return
		}
		time.Sleep(time.Second)
	}
	t.Errorf("incidents still active 2 minutes after healing: %s", describe(r.obs.since(since)))
}

// baseline runs d of clean traffic with an unrelated CPU hog on the machine
// in the middle of it; no incident may appear.
func (r *rig) baseline(t *testing.T, set string, d time.Duration) {
	at := time.Now()
	time.Sleep(d / 4)
	hog := r.tp.Client.Start(t, "sh", "-c", "while :; do :; done")
	time.Sleep(d / 2)
	hog.Process.Kill()
	time.Sleep(d / 4)
	got := r.obs.since(at.Add(-time.Minute))
	record(row{set: set, fault: fmt.Sprintf("clean %v + cpu hog", d), want: "no incident", kindOK: len(got) == 0, originOK: true,
		blameOK: "-", extra: len(got), got: describe(got)})
	if len(got) > 0 {
		t.Errorf("clean baseline of %v raised %d incident(s): %s", d, len(got), describe(got))
	}
}

// rulesHealthy: every shipped rule loaded and evaluates without error on
// the real exporter's and analyzer's series.
func (r *rig) rulesHealthy(t *testing.T) {
	resp, err := r.http.Get("http://127.0.0.1:9090/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string
				Rules []struct{ Name, Health, LastError string }
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Data.Groups {
		for _, rl := range g.Rules {
			n++
			if rl.Health != "ok" {
				t.Errorf("rule %s/%s: health %q: %s", g.Name, rl.Name, rl.Health, rl.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded none of the shipped rules")
	}
}

func intStrings(xs []int) []string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

func (r *rig) check(t *testing.T) {
	var f struct {
		Paths []struct {
			Node, Target string
			RateLimited  []int `json:"rate_limited_hops"`
		}
	}
	if err := r.get("/api/v1/fleet", &f); err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Paths {
		if !contains(intStrings(p.RateLimited), "1") {
			t.Errorf("path %s→%s: rate-limited hops %v, want the gateway (hop 1) flagged", p.Node, p.Target, p.RateLimited)
		}
	}
	if len(f.Paths) == 0 {
		t.Error("no mtr path in /api/v1/fleet")
	}
	r.rulesHealthy(t)
	if v := r.obs.violations(); len(v) > 0 {
		t.Errorf("incidents (node or fleet) left the list while active, or were listed ended without an end: %v", v)
	}
	for _, s := range r.obs.since(r.started.Add(-time.Hour)) {
		if s.OriginHop == 1 {
			t.Errorf("%s names hop 1, the gateway that only rate-limits its ICMP, as the origin", s.ID)
		}
	}
}

// The faults. Addresses: dst 198.18.10.2, dst2 198.18.11.2; hop 1 the
// gateway, 2 the ISP router, 3 the destination.
func lossAtISP(ratio float64) func(r *rig) func() {
	return func(r *rig) func() { return r.tp.ISP.DropRandom(r.t, ratio, "ip daddr "+r.dst) }
}

func delayAtISP(d time.Duration) func(r *rig) func() {
	return func(r *rig) func() {
		r.delay.Up.Set(lab.DelayParams{Delay: d})
		return func() { r.delay.Up.Set(lab.DelayParams{}) }
	}
}

var (
	fLoss = fault{name: "30% loss at the ISP", kinds: []string{"packet-loss"}, target: "dst", origin: 3,
		detect: 30 * time.Second, hold: 30 * time.Second, inject: lossAtISP(0.3)}
	fYoung = fault{name: "+100 ms, young node", kinds: []string{"latency-spike"}, target: "dst",
		detect: 60 * time.Second, hold: 30 * time.Second, inject: delayAtISP(100 * time.Millisecond)}
	fLinkDown = fault{name: "gateway link down", kinds: []string{"link-down"}, detect: 30 * time.Second, hold: 20 * time.Second,
		inject: func(r *rig) func() {
			r.tp.Home.SetDown(lab.SideB)
			return func() { r.tp.Home.SetUp(lab.SideB) }
		}}
	fISP = fault{name: "ISP uplink down", kinds: []string{"isp-outage"}, detect: 30 * time.Second, hold: 20 * time.Second,
		inject: func(r *rig) func() {
			r.tp.Uplink.SetDown(lab.SideB)
			return func() { r.tp.Uplink.SetUp(lab.SideB) }
		}}
	fDelay = fault{name: "+150 ms at the ISP", kinds: []string{"latency-spike"}, target: "dst",
		detect: 60 * time.Second, hold: 30 * time.Second, inject: delayAtISP(150 * time.Millisecond)}
	fDNS = fault{name: "DNS answers in 800 ms", kinds: []string{"dns-slow"}, target: "$resolver",
		detect: 60 * time.Second, hold: 20 * time.Second, inject: func(r *rig) func() {
			r.dns.SetDelay(800 * time.Millisecond)
			return func() { r.dns.SetDelay(0) }
		}}
	fBloat = fault{name: "upload through 8 Mbit/s", kinds: []string{"latency-spike", "bufferbloat"}, target: "dst", blame: "network_transmit",
		detect: 60 * time.Second, hold: 20 * time.Second, inject: func(r *rig) func() {
			unshape := r.tp.Uplink.Shape(r.t, lab.SideA, lab.Shaping{Rate: 8e6, Buffer: 400 * time.Millisecond})
			up := r.tp.Client.Start(r.t, "iperf3", "-c", r.dst, "-p", "5201", "-t", "600")
			return func() { up.Process.Kill(); unshape() }
		}}
	fFleet = fault{name: "two nodes, lossy ISP", kinds: []string{"packet-loss"}, target: "dst", origin: 3, node: "lab-b",
		detect: 30 * time.Second, hold: 30 * time.Second, fleet: "hop/198.18.2.1",
		inject: func(r *rig) func() { return r.tp.ISP.DropRandom(r.t, 0.3, "ip daddr { "+r.dst+", "+r.dst2+" }") }}
)

// TestDiagnoseShort is the CI set: a young node's first minutes, clean with
// an unrelated CPU hog, then a latency rise it has no seasonal history for,
// and loss behind an ICMP-rate-limited gateway.
func TestDiagnoseShort(t *testing.T) {
	if os.Getenv("DIAGNOSE") == "full" || os.Getenv("DIAGNOSE_CASES") != "" {
		t.Skip("DIAGNOSE=full or DIAGNOSE_CASES runs another set instead")
	}
	r := newRig(t, false)
	r.baseline(t, "short", 90*time.Second)
	r.run(t, "short", fYoung)
	r.run(t, "short", fLoss)
	r.check(t)
}

// TestDiagnoseFull is `make diagnose`: a young node's latency rise and
// upload-induced bufferbloat, an 8-minute baseline with a CPU hog, every
// fault, and two nodes behind one failing hop.
func TestDiagnoseFull(t *testing.T) {
	if os.Getenv("DIAGNOSE") != "full" {
		t.Skip("the full diagnosis set runs with DIAGNOSE=full (make diagnose)")
	}
	r := newRig(t, true)
	time.Sleep(3 * time.Minute) // a young node: three minutes of history
	r.run(t, "full", fYoung)
	young := fBloat
	young.name += ", young"
	r.run(t, "full", young) // issue 15: not detected at all on a young node
	r.baseline(t, "full", 8*time.Minute)
	for _, f := range []fault{fLoss, fLinkDown, fISP, fDelay, fDNS, fBloat, fFleet} {
		r.run(t, "full", f)
	}
	r.check(t)
}

// cases are the faults by the names DIAGNOSE_CASES picks them with.
var cases = map[string]fault{"loss": fLoss, "young": fYoung, "linkdown": fLinkDown, "isp": fISP, "delay": fDelay,
	"dns": fDNS, "bloat": fBloat, "fleet": fFleet}

// TestDiagnoseCases runs the faults DIAGNOSE_CASES names, in its order
// (comma-separated keys of cases, plus "baseline" for the 8-minute clean
// run with a CPU hog and "bloat-young" for the upload on a node with about
// five minutes of history): one fault's check without the whole set.
func TestDiagnoseCases(t *testing.T) {
	list := os.Getenv("DIAGNOSE_CASES")
	if list == "" {
		t.Skip("DIAGNOSE_CASES=dns,bloat-young,baseline,fleet,... picks cases")
	}
	names := strings.Split(list, ",")
	for _, n := range names {
		if _, ok := cases[n]; !ok && n != "baseline" && n != "bloat-young" {
			t.Fatalf("DIAGNOSE_CASES: unknown case %q", n)
		}
	}
	r := newRig(t, contains(names, "fleet"))
	for _, n := range names {
		switch n {
		case "baseline":
			r.baseline(t, "cases", 8*time.Minute)
		case "bloat-young":
			time.Sleep(time.Until(r.started.Add(5 * time.Minute))) // the full set's history at this fault
			young := fBloat
			young.name += ", young"
			r.run(t, "cases", young)
		default:
			r.run(t, "cases", cases[n])
		}
	}
	r.check(t)
}
