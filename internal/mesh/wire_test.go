package mesh

import (
	"testing"
	"time"
)

func TestSessionStateAndVerdicts(t *testing.T) {
	var st sessionState
	// The responder sees 1, 2, 4, 3 (late), 5, then 70; 6..69 never arrive.
	for _, s := range []uint32{1, 2, 4} {
		if st.record(s) {
			t.Fatalf("seq %d flagged reordered", s)
		}
	}
	if !st.record(3) {
		t.Error("seq 3 after 4 not flagged reordered")
	}
	st.record(5)
	h := Header{Hi: st.hi, Seen: st.seen, Rx: st.rx}
	if h.Rx != 5 || h.Hi != 5 {
		t.Fatalf("rx %d hi %d", h.Rx, h.Hi)
	}
	for seq, want := range map[uint32]Verdict{1: Seen, 2: Seen, 3: Seen, 4: Seen, 5: Seen, 6: Pending} {
		if got := h.About(seq); got != want {
			t.Errorf("About(%d) = %v, want %v", seq, got, want)
		}
	}
	st.record(70)
	h = Header{Hi: st.hi, Seen: st.seen}
	for seq, want := range map[uint32]Verdict{5: Unknown, 6: Missed, 40: Missed, 69: Missed, 70: Seen, 71: Pending} {
		if got := h.About(seq); got != want {
			t.Errorf("after 70: About(%d) = %v, want %v", seq, got, want)
		}
	}
	st.record(6) // exactly 64 back: still in the bitmap
	h = Header{Hi: st.hi, Seen: st.seen}
	if h.About(6) != Seen || h.About(7) != Missed {
		t.Errorf("bit 63: About(6) = %v, About(7) = %v", h.About(6), h.About(7))
	}
}

func TestWireRoundTripAndRejects(t *testing.T) {
	b := make([]byte, 100)
	PutRequest(b, 0xdeadbeef, 7, 123456789)
	h, err := ParseRequest(b)
	if err != nil || h.Session != 0xdeadbeef || h.Seq != 7 || h.T1 != 123456789 || h.Length != 100 {
		t.Fatalf("ParseRequest: %+v %v", h, err)
	}
	if _, err := ParseReply(b); err == nil {
		t.Error("a request parsed as a reply")
	}
	st := sessionState{}
	st.record(7)
	turnIntoReply(b, 1000, st, true)
	stampSend(b, 2000)
	r, err := ParseReply(b)
	if err != nil || r.T2 != 1000 || r.T3 != 2000 || r.Rx != 1 || r.Hi != 7 || !r.Reordered || r.T1 != 123456789 {
		t.Fatalf("ParseReply: %+v %v", r, err)
	}
	bad := map[string][]byte{
		"short":     b[:20],
		"truncated": b[:99], // length field says 100
		"magic":     append([]byte("XXXX"), b[4:]...),
	}
	v := append([]byte(nil), b...)
	v[4] = 2
	bad["version"] = v
	tiny := make([]byte, 32)
	PutRequest(make([]byte, 64), 1, 1, 1)
	copy(tiny, "SMKM\x01\x01\x00\x20")
	bad["below header"] = tiny
	for name, p := range bad {
		if _, err := ParseRequest(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := ParseReply(p); err == nil {
			t.Errorf("%s: accepted as reply", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	b := make([]byte, HeaderLen)
	PutRequest(b, 1, 2, 3)
	f.Add(b)
	f.Add([]byte("SMKM"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if h, err := ParseRequest(p); err == nil && h.Length != len(p) {
			t.Fatalf("accepted a request whose length field %d != %d", h.Length, len(p))
		}
		if h, err := ParseReply(p); err == nil {
			for s := uint32(0); s < 3; s++ {
				h.About(h.Hi - s)
			}
		}
	})
}

func TestClockFilter(t *testing.T) {
	ms := int64(time.Millisecond)
	cases := []struct {
		name             string
		fwd, ret         int64 // true one-way delays
		offset           int64 // responder clock minus prober clock
		wantOff, wantUnc int64
		trust            bool
	}{
		{"symmetric, same clock", 10 * ms, 10 * ms, 0, 0, 10 * ms, true},
		{"asymmetric, same clock", 20 * ms, 5 * ms, 0, 15 * ms / 2, 25 * ms / 2, true},
		{"responder 50ms ahead", 10 * ms, 10 * ms, 50 * ms, 50 * ms, 10 * ms, false},
		{"responder 50ms behind", 10 * ms, 10 * ms, -50 * ms, -50 * ms, 10 * ms, false},
		{"small offset inside the bound", 10 * ms, 10 * ms, 3 * ms, 3 * ms, 10 * ms, true},
	}
	for _, c := range cases {
		var f ClockFilter
		if _, ok := f.Estimate(0); ok {
			t.Fatal("estimate without samples")
		}
		for i := range 100 {
			q := int64(i%7) * ms / 2 // queueing noise only ever adds delay
			f.Add(c.fwd+c.offset+q, c.ret-c.offset+q/2)
		}
		e, _ := f.Estimate(0)
		if int64(e.Offset) != c.wantOff || int64(e.Uncertainty) != c.wantUnc || e.Trustworthy != c.trust {
			t.Errorf("%s: offset %v ± %v trustworthy %v, want %v ± %v %v", c.name, e.Offset, e.Uncertainty, e.Trustworthy,
				time.Duration(c.wantOff), time.Duration(c.wantUnc), c.trust)
		}
	}
	// A clock step inside the window makes it inconsistent.
	var f ClockFilter
	for range 32 {
		f.Add(10*ms+40*ms, 10*ms-40*ms)
	}
	for range 32 {
		f.Add(10*ms, 10*ms)
	}
	if e, _ := f.Estimate(0); e.Trustworthy {
		t.Errorf("clock step: %+v judged trustworthy", e)
	}
	// A limit on the uncertainty.
	f = ClockFilter{}
	for range 10 {
		f.Add(10*ms, 10*ms)
	}
	if e, _ := f.Estimate(5 * time.Millisecond); e.Trustworthy {
		t.Errorf("uncertainty 10ms above a 5ms limit judged trustworthy")
	}
	if e, _ := f.Estimate(20 * time.Millisecond); !e.Trustworthy {
		t.Errorf("uncertainty 10ms within a 20ms limit judged untrustworthy")
	}
}
