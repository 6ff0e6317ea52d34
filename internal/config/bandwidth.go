package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/smokemon/smokemon/internal/bufferbloat"
)

// BandwidthConfig is the bandwidth section: scheduled iperf3 runs and ping under load. Off (no targets) unless configured.
type BandwidthConfig struct {
	Targets []BandwidthTarget `yaml:"targets"`
	// Grades are the bufferbloat bands, best first; the last has no bound.
	// Default: DSLReports (A+ < 5ms, A < 30ms, B < 60ms, C < 200ms, D < 400ms, F).
	Grades []GradeBand `yaml:"grades"`
}

// GradeBand is one bufferbloat grade: latency increases below Below earn Grade.
type GradeBand struct {
	Grade string   `yaml:"grade"`
	Below Duration `yaml:"below"`
}

// BandwidthTarget is one iperf3 server and how to test against it.
type BandwidthTarget struct {
	// Server is host[:port] of an iperf3 server (port 5201 when omitted;
	// bracket IPv6 literals that carry a port: [2001:db8::1]:5201).
	Server string            `yaml:"server"`
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
	Family Family            `yaml:"family"` // auto, ip4 or ip6 (iperf3 -4/-6, and the ping reference)

	Interval Duration `yaml:"interval"` // time between runs; default 1h
	// Splay bounds the random delay of the first run after start-up (default:
	// the interval), so a fleet restarted together does not test all at once.
	Splay *Duration `yaml:"splay"`

	Directions []string `yaml:"directions"` // download (iperf3 -R) and/or upload; default both
	Protocol   string   `yaml:"protocol"`   // tcp
	Duration   Duration `yaml:"duration"`   // iperf3 -t, whole seconds; default 10s
	// Warmup is the start of the load (TCP slow start, the queue still
	// filling) whose pings are left out of the loaded RTT; default 1s. The
	// throughput covers the whole test: iperf3's own -O is not used, because
	// iperf3 3.12 then miscounts the receiver's bytes behind a deep queue
	// (it reported 22 Mbit/s through a 20 Mbit/s link in the lab).
	Warmup     *Duration `yaml:"warmup"`
	Parallel   int       `yaml:"parallel"`   // iperf3 -P streams; default 1
	Congestion string    `yaml:"congestion"` // iperf3 -C (e.g. reno, bbr); empty: the system default

	Timeout        Duration `yaml:"timeout"`         // hard limit for one iperf3 test; default duration+connect_timeout+5s
	ConnectTimeout Duration `yaml:"connect_timeout"` // iperf3 --connect-timeout; default 5s
	BusyRetries    *int     `yaml:"busy_retries"`    // retries when the server is busy; default 3
	BusyBackoff    Duration `yaml:"busy_backoff"`    // first wait before a retry, doubling each time; default 5s

	// PingHost is the reference pinged for idle and loaded RTT; default: the server's host.
	PingHost     string   `yaml:"ping_host"`
	PingInterval Duration `yaml:"ping_interval"` // default 100ms
	PingTimeout  Duration `yaml:"ping_timeout"`  // a reply later than this is a loss, never a latency; default 2s
	IdleDuration Duration `yaml:"idle_duration"` // idle RTT is measured this long before the load; default 3s
}

// Bandwidth probe limits and defaults.
const (
	MinBandwidthInterval   = time.Minute
	DefaultIperf3Port      = 5201
	maxBandwidthDuration   = 10 * time.Minute
	maxBandwidthParallel   = 128
	maxBusyRetries         = 10
	defaultBandwidthIv     = time.Hour
	defaultBandwidthDur    = 10 * time.Second
	defaultBandwidthWarmup = time.Second
	defaultConnectTimeout  = 5 * time.Second
	defaultBusyRetries     = 3
	defaultBusyBackoff     = 5 * time.Second
	defaultPingUnderLoadIv = 100 * time.Millisecond
	defaultPingUnderLoadTO = 2 * time.Second
	defaultIdleDuration    = 3 * time.Second
)

// Bandwidth directions.
const (
	DirectionDownload = "download"
	DirectionUpload   = "upload"
)

var bandwidthLabels = ownLabels{"bandwidth", []string{"direction", "percentile", "reason", "grade", "server", "ping_host"}}

// DefaultBandwidthTarget holds a target's defaults (see fillDefaults). What
// follows from other settings is filled in by validate: the name and ping
// host (the server's), the family (global's), splay (the interval), warmup
// (1s, at most half the test) and timeout (duration + connect_timeout + 5s).
var DefaultBandwidthTarget = BandwidthTarget{
	Interval:       Duration(defaultBandwidthIv),
	Directions:     []string{DirectionDownload, DirectionUpload},
	Protocol:       "tcp",
	Duration:       Duration(defaultBandwidthDur),
	Parallel:       1,
	ConnectTimeout: Duration(defaultConnectTimeout),
	BusyRetries:    intp(defaultBusyRetries),
	BusyBackoff:    Duration(defaultBusyBackoff),
	PingInterval:   Duration(defaultPingUnderLoadIv),
	PingTimeout:    Duration(defaultPingUnderLoadTO),
	IdleDuration:   Duration(defaultIdleDuration),
}

var congestionRE = regexp.MustCompile(`^[a-z0-9_]{1,15}$`)

// HostPort splits Server into host and port (after validation).
func (t *BandwidthTarget) HostPort() (string, int) {
	h, p, _ := splitServer(t.Server)
	return h, p
}

// Scale returns the bufferbloat bands (after validation).
func (c *BandwidthConfig) Scale() bufferbloat.Scale {
	s := make(bufferbloat.Scale, len(c.Grades))
	for i, g := range c.Grades {
		s[i] = bufferbloat.Band{Grade: g.Grade, Below: time.Duration(g.Below)}
	}
	return s
}

func splitServer(s string) (string, int, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), DefaultIperf3Port, nil
	}
	if !strings.Contains(s, ":") {
		return s, DefaultIperf3Port, nil
	}
	h, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host[:port] (bracket an IPv6 address that has a port: [2001:db8::1]:5201)", s)
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", ps)
	}
	return h, p, nil
}

func (c *BandwidthConfig) validate(g *Global, add adder) {
	if len(c.Grades) == 0 {
		for _, b := range bufferbloat.DSLReports {
			c.Grades = append(c.Grades, GradeBand{Grade: b.Grade, Below: Duration(b.Below)})
		}
	} else if err := c.Scale().Validate(); err != nil {
		path := "bandwidth.grades"
		if be, ok := err.(*bufferbloat.BandError); ok && be.Index >= 0 {
			path = fmt.Sprintf("%s[%d]", path, be.Index)
		}
		add(path, "%v", err)
	}
	if len(c.Targets) > 0 {
		checkOwnLabels("global.labels", g.Labels, bandwidthLabels, add)
	}
	names := map[string]int{}
	for i := range c.Targets {
		c.Targets[i].validate(fmt.Sprintf("bandwidth.targets[%d]", i), g, add)
		uniqueName("bandwidth.targets", i, c.Targets[i].Name, names, add)
	}
}

func (t *BandwidthTarget) validate(p string, g *Global, add adder) {
	host := ""
	if t.Server == "" {
		add(p+".server", "missing: every target needs an iperf3 server (host or host:port)")
	} else if h, _, err := splitServer(t.Server); err != nil {
		add(p+".server", "%v", err)
	} else if h == GatewayKeyword || !validHost(h) {
		add(p+".server", "%q is neither an IP address nor a valid host name", h)
	} else {
		host = h
	}
	if t.PingHost != "" && (t.PingHost == GatewayKeyword || !validHost(t.PingHost)) {
		add(p+".ping_host", "%q is neither an IP address nor a valid host name", t.PingHost)
	}
	checkLabels(p+".labels", t.Labels, bandwidthLabels, add)
	// What is unset follows the defaults, then the settings it depends on.
	splay, warmup, timeout := t.Splay, t.Warmup, t.Timeout
	fillDefaults(t, &DefaultBandwidthTarget)
	fillDefaults(t, &BandwidthTarget{Name: t.Server, PingHost: host, Splay: durp(t.Interval),
		Warmup: durp(Duration(min(defaultBandwidthWarmup, time.Duration(t.Duration)/2)))})
	oneFamily(&t.Family, g) // one run per target: "both" would double the load
	if timeout == 0 {
		t.Timeout = Duration(time.Duration(t.Duration) + time.Duration(t.ConnectTimeout) + 5*time.Second)
	}
	if t.Family != FamilyAuto && t.Family != FamilyIP4 && t.Family != FamilyIP6 {
		add(p+".family", "%q is not one of auto, ip4, ip6 (a bandwidth test runs over one family)", t.Family)
	}
	checkList(p+".directions", t.Directions, []string{DirectionDownload, DirectionUpload}, add)
	if t.Protocol != "tcp" {
		add(p+".protocol", "%q is not supported (tcp only)", t.Protocol)
	}
	if t.Congestion != "" && !congestionRE.MatchString(t.Congestion) {
		add(p+".congestion", "%q is not a congestion control name (e.g. cubic, reno, bbr)", t.Congestion)
	}
	t.checkTimes(p, splay != nil, warmup != nil, timeout != 0, add)
	checkRange(p+".parallel", t.Parallel, 1, maxBandwidthParallel, "streams", add)
	checkRange(p+".busy_retries", *t.BusyRetries, 0, maxBusyRetries, "", add)
}

// checkTimes checks the target's durations; splay, warmup and timeout are
// checked against the others only when they were set.
func (t *BandwidthTarget) checkTimes(p string, splay, warmup, timeout bool, add adder) {
	d := func(v Duration) time.Duration { return time.Duration(v) }
	if d(t.Interval) < MinBandwidthInterval {
		add(p+".interval", "%s is below the minimum of %s: a bandwidth test saturates the link", d(t.Interval), MinBandwidthInterval)
	}
	if splay && *t.Splay > t.Interval {
		add(p+".splay", "%s is longer than the interval (%s)", d(*t.Splay), d(t.Interval))
	}
	wholeSeconds(p+".duration", t.Duration, time.Second, maxBandwidthDuration, add)
	if warmup && *t.Warmup >= t.Duration {
		add(p+".warmup", "%s leaves no time under load to ping (duration is %s)", d(*t.Warmup), d(t.Duration))
	}
	if timeout && t.Timeout <= t.Duration {
		add(p+".timeout", "%s leaves no time for the test itself (duration = %s)", d(t.Timeout), d(t.Duration))
	}
	checkRange(p+".connect_timeout", d(t.ConnectTimeout), 100*time.Millisecond, time.Minute, "", add)
	checkRange(p+".busy_backoff", d(t.BusyBackoff), 100*time.Millisecond, 10*time.Minute, "", add)
	checkRange(p+".ping_interval", d(t.PingInterval), MinInterval, 10*time.Second, "", add)
	checkRange(p+".ping_timeout", d(t.PingTimeout), time.Millisecond, MaxTimeout, "", add)
	if idle := d(t.IdleDuration); idle < 3*d(t.PingInterval) || idle > time.Minute {
		add(p+".idle_duration", "%s is out of range (three ping intervals, %s, to 1m)", idle, 3*d(t.PingInterval))
	}
}

// wholeSeconds checks an iperf3 time option, which takes whole seconds.
func wholeSeconds(path string, d Duration, lo, hi time.Duration, add adder) {
	v := time.Duration(d)
	switch {
	case v%time.Second != 0:
		add(path, "%s is not a whole number of seconds (iperf3 counts in seconds)", v)
	case v < lo || v > hi:
		add(path, "%s is out of range (%s to %s)", v, lo, hi)
	}
}
