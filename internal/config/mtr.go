package config

import (
	"fmt"
	"time"
)

// MTRConfig is the mtr section: per-hop path probing (TTL-limited ICMP echo). Off (no targets) unless configured.
//
// A round lasts one interval: every hop of the path is probed `probes` times,
// one sweep of all hops (in parallel) every interval/probes. The section's
// settings are the defaults of its targets.
type MTRConfig struct {
	// Interval and Timeout do not follow global.interval: that is the ping
	// cadence, and a sweep costs up to max_hops packets.
	Interval   Duration    `yaml:"interval"`
	Timeout    Duration    `yaml:"timeout"` // per sweep; at most interval/probes
	MaxHops    int         `yaml:"max_hops"`
	Probes     int         `yaml:"probes"` // per hop per round
	PacketSize *int        `yaml:"packet_size"`
	Family     Family      `yaml:"family"`
	Source     string      `yaml:"source"`
	Targets    []MTRTarget `yaml:"targets"`
}

// MTRTarget is one destination whose path is traced.
type MTRTarget struct {
	Host       string            `yaml:"host"`
	Name       string            `yaml:"name"`
	Labels     map[string]string `yaml:"labels"`
	Interval   Duration          `yaml:"interval"`
	Timeout    Duration          `yaml:"timeout"`
	MaxHops    int               `yaml:"max_hops"`
	Probes     int               `yaml:"probes"`
	PacketSize *int              `yaml:"packet_size"`
	Family     Family            `yaml:"family"`
	Source     string            `yaml:"source"`
}

// IntervalD and TimeoutD are the resolved schedule, valid after Load.
func (t *MTRTarget) IntervalD() time.Duration { return time.Duration(t.Interval) }
func (t *MTRTarget) TimeoutD() time.Duration  { return time.Duration(t.Timeout) }

// Defaults and limits of the mtr section.
const (
	DefaultMTRInterval = 10 * time.Second
	DefaultMTRTimeout  = 2 * time.Second
	DefaultMTRMaxHops  = 30
	DefaultMTRProbes   = 5
	MaxMTRHops         = 64
	MaxMTRProbes       = 100
)

var mtrLabels = ownLabels{"mtr", []string{"hop"}}

// DefaultMTR holds the section's defaults (see fillDefaults); packet size,
// family and source come from global.
var DefaultMTR = MTRConfig{Interval: Duration(DefaultMTRInterval), MaxHops: DefaultMTRMaxHops, Probes: DefaultMTRProbes}

func (c *MTRConfig) validate(g *Global, add adder) {
	timeoutSet := c.Timeout != 0
	fillDefaults(c, &DefaultMTR)
	if c.PacketSize == nil {
		c.PacketSize = g.PacketSize
	}
	if c.Family == "" {
		c.Family = g.Family
	}
	if c.Source == "" {
		c.Source = g.Source
	}
	// The section's own settings are checked as if it were a target, so a bad
	// default is reported once, at its own line.
	sec := MTRTarget{Interval: c.Interval, Timeout: c.Timeout, MaxHops: c.MaxHops, Probes: c.Probes, PacketSize: c.PacketSize, Family: c.Family, Source: c.Source}
	sec.check("mtr", add)
	c.Timeout = sec.Timeout
	if len(c.Targets) > 0 {
		checkOwnLabels("global.labels", g.Labels, mtrLabels, add)
	}
	// A section timeout that only came from the default is left unset in
	// the targets, so that it follows each target's own schedule.
	if !timeoutSet {
		sec.Timeout = 0
	}
	names := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("mtr.targets[%d]", i)
		switch {
		case t.Host == "":
			add(p+".host", "missing: every target needs a host (name or address)")
		case t.Host == GatewayKeyword || !validHost(t.Host):
			add(p+".host", "%q is neither an IP address nor a valid host name", t.Host)
		}
		if t.Name == "" {
			t.Name = t.Host
		}
		uniqueName("mtr.targets", i, t.Name, names, add)
		checkLabels(p+".labels", t.Labels, mtrLabels, add)
		fillDefaults(t, &sec)
		t.check(p, add)
		checkLiteralFamily(p, t.Host, t.Family, add)
	}
}

// check fills an unset timeout (the sweep spacing, at most 2s) and checks
// one set of settings.
func (t *MTRTarget) check(path string, add adder) {
	probes := t.Probes
	if probes < 1 || probes > MaxMTRProbes {
		add(path+".probes", "%d is out of range (1 to %d probes per hop per round)", probes, MaxMTRProbes)
		probes = 1
	}
	spacing := time.Duration(t.Interval) / time.Duration(probes)
	if t.Timeout == 0 {
		t.Timeout = Duration(min(DefaultMTRTimeout, spacing))
	}
	checkSchedule(path, t.Interval, t.Timeout, spacing, "interval/probes", add)
	checkRange(path+".max_hops", t.MaxHops, 1, MaxMTRHops, "", add)
	if t.PacketSize != nil {
		checkRange(path+".packet_size", *t.PacketSize, MinPacketSize, MaxPacketSize, "payload bytes", add)
	}
	checkFamilySource(path, t.Family, t.Source, add)
}
