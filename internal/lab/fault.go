package lab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DropRandom drops a fraction ratio of the packets that match an nftables match
// expression (e.g. "icmp type echo-request", "ip daddr 198.18.3.2", or "" for all),
// both those addressed to the host and those it forwards. Each packet is dropped
// independently (numgen random), so the count lost out of n is binomial(n, ratio).
// undo removes the rule; it is also removed with the namespace.
func (h *Host) DropRandom(t testing.TB, ratio float64, match string) (undo func()) {
	t.Helper()
	if ratio < 0 || ratio > 1 {
		t.Fatalf("DropRandom: ratio %v outside [0,1]", ratio)
	}
	h.lab.mu.Lock()
	h.lab.nft++
	table := fmt.Sprintf("smklab_drop%d", h.lab.nft)
	h.lab.mu.Unlock()
	// Priority -10 puts the drop before any filter a test or program adds at 0.
	rule := fmt.Sprintf("%s numgen random mod 1000 < %d counter drop", match, int(ratio*1000+0.5))
	if ratio >= 1 { // numgen mod 1000 never reaches 1000, and nft rejects the bound
		rule = fmt.Sprintf("%s counter drop", match)
	}
	script := fmt.Sprintf(`table inet %[1]s {
	chain input { type filter hook input priority -10; policy accept; %[2]s; }
	chain forward { type filter hook forward priority -10; policy accept; %[2]s; }
}
`, table, rule)
	h.nft(t, script)
	done := false
	return func() {
		t.Helper()
		if !done {
			done = true
			h.nft(t, "delete table inet "+table+"\n")
		}
	}
}

// nft loads a ruleset script into the namespace.
func (h *Host) nft(t testing.TB, script string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", h.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: nft: %v: %s\nscript:\n%s", h.short, err, bytes.TrimSpace(out), script)
	}
}

// LimitICMP turns on the kernel's per-destination rate limit for the ICMP errors h
// sends (time exceeded, destination unreachable, parameter problem; IPv4 and IPv6):
// at most one per interval to each destination after a burst of a few. Echo replies are
// not limited, so probes through h see no loss while probes that expire at h do. Lab
// hosts start unlimited; an interval of 0 returns to that.
func (h *Host) LimitICMP(interval time.Duration) {
	h.lab.t.Helper()
	ms := fmt.Sprint(interval.Milliseconds())
	h.sysctls(map[string]string{
		"net/ipv4/icmp_ratelimit": ms,
		"net/ipv4/icmp_ratemask":  "6168", // kernel default: unreachable, source quench, time exceeded, parameter problem
		"net/ipv6/icmp/ratelimit": ms,
		"net/ipv6/icmp/ratemask":  "0-1,3-127", // kernel default: all errors
	})
}

// Shaping is a tc tbf rate limit on one interface's egress.
type Shaping struct {
	Rate uint64 // bits per second
	// Buffer is how long a packet may wait in the queue before it is dropped: a deep
	// buffer (hundreds of ms) makes bufferbloat, a shallow one (a few ms) drops instead.
	Buffer time.Duration
	// Burst is the bucket size in bytes; 0 means 10 ms at Rate, and at least two
	// full-size frames.
	Burst int
}

// Shape limits what side sends into the link. undo removes the limit.
func (k *Link) Shape(t testing.TB, side int, s Shaping) (undo func()) {
	t.Helper()
	burst := s.Burst
	if burst == 0 {
		burst = max(int(s.Rate/8/100), 2*1514)
	}
	h, dev := k.Hosts[side], k.Ifs[side]
	h.tc(t, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", fmt.Sprintf("%dbit", s.Rate),
		"burst", fmt.Sprint(burst),
		"latency", fmt.Sprintf("%dus", s.Buffer.Microseconds()))
	return func() {
		t.Helper()
		h.tc(t, "qdisc", "del", "dev", dev, "root")
	}
}

func (h *Host) tc(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("tc", append([]string{"-n", h.name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: tc %s: %v: %s", h, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}
