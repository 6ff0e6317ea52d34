package status

import (
	"testing"
	"time"
)

// A target that stops answering shows a burst, then is down; it is up again
// once most of a minute answers, without a burst for the outage's tail. A
// target a reload removed is forgotten.
func TestDownAndUpEvents(t *testing.T) {
	st := New("n")
	tg := &simTarget{name: "t", family: "ip4", probed: true}
	other := &simTarget{name: "o", family: "ip6", probed: true, rtt: jitter(0.001, 0)}
	dead := func(s int) bool { return s >= 60 && s < 180 }
	tg.rtt = func(_ *randT, s int) float64 {
		if dead(s) {
			return 0
		}
		return 0.002
	}
	r := newRand()
	for s := 0; s <= 300; s += 10 {
		tg.step(r, s, 10)
		other.step(r, s, 10)
		now := scenarioStart.Add(time.Duration(s) * time.Second)
		samples := []TargetSample{tg.sample()}
		if s < 200 {
			samples = append(samples, other.sample())
		}
		st.ObservePing(now, samples)
	}
	rep := st.Report(scenarioStart.Add(300*time.Second), MaxEvents)
	var kinds []string
	for _, e := range rep.Events {
		kinds = append(kinds, e.Kind+" "+e.Target)
	}
	want := []string{EventUp + " t", EventDown + " t", EventLossBurst + " t"}
	if len(kinds) != 3 || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] {
		t.Errorf("events %v, want %v", kinds, want)
	}
	if len(rep.Targets) != 1 || rep.Targets[0].State != StateUp {
		t.Errorf("targets %+v, want t alone and up", rep.Targets)
	}
}
