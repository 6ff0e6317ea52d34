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

// Labels the mtr collector sets itself.
var mtrLabelNames = []string{"hop"}

func (c *MTRConfig) validate(g *Global, add adder) {
	if c.Interval == 0 {
		c.Interval = Duration(DefaultMTRInterval)
	}
	if c.MaxHops == 0 {
		c.MaxHops = DefaultMTRMaxHops
	}
	if c.Probes == 0 {
		c.Probes = DefaultMTRProbes
	}
	if c.PacketSize == nil {
		c.PacketSize = g.PacketSize
	}
	if c.Family == "" {
		c.Family = g.Family
	}
	if c.Source == "" {
		c.Source = g.Source
	}
	timeoutSet := c.Timeout != 0
	// The section's own settings are checked as if it were a target, so a bad
	// default is reported once, at its own line.
	mtrCheck("mtr", c.Interval, &c.Timeout, c.MaxHops, c.Probes, c.PacketSize, c.Family, c.Source, add)
	if len(c.Targets) > 0 {
		mtrReserved("global.labels", g.Labels, add)
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
		if j, dup := names[t.Name]; dup {
			add(p+".name", "%q is already the name of mtr.targets[%d]; names must be unique (set name: to tell them apart)", t.Name, j)
		} else {
			names[t.Name] = i
		}
		checkLabels(p+".labels", t.Labels, add)
		mtrReserved(p+".labels", t.Labels, add)
		if t.Interval == 0 {
			t.Interval = c.Interval
		}
		if t.MaxHops == 0 {
			t.MaxHops = c.MaxHops
		}
		if t.Probes == 0 {
			t.Probes = c.Probes
		}
		// A section timeout that only came from the default is left unset,
		// so that it follows this target's own schedule.
		if t.Timeout == 0 && timeoutSet {
			t.Timeout = c.Timeout
		}
		if t.PacketSize == nil {
			t.PacketSize = c.PacketSize
		}
		if t.Family == "" {
			t.Family = c.Family
		}
		if t.Source == "" {
			t.Source = c.Source
		}
		mtrCheck(p, t.Interval, &t.Timeout, t.MaxHops, t.Probes, t.PacketSize, t.Family, t.Source, add)
		checkLiteralFamily(p, t.Host, t.Family, add)
	}
}

// mtrCheck fills an unset timeout (the sweep spacing, at most 2s) and checks
// one set of settings.
func mtrCheck(path string, iv Duration, to *Duration, maxHops, probes int, size *int, fam Family, src string, add adder) {
	if probes < 1 || probes > MaxMTRProbes {
		add(path+".probes", "%d is out of range (1 to %d probes per hop per round)", probes, MaxMTRProbes)
		probes = 1
	}
	spacing := time.Duration(iv) / time.Duration(probes)
	if *to == 0 {
		*to = Duration(min(DefaultMTRTimeout, spacing))
	}
	switch {
	case time.Duration(iv) < MinInterval:
		add(path+".interval", "%s is below the minimum of %s", time.Duration(iv), MinInterval)
	case time.Duration(*to) > spacing:
		add(path+".timeout", "%s is longer than interval/probes (%s): a sweep must be answered or lost before the next one", time.Duration(*to), spacing)
	case time.Duration(*to) > MaxTimeout:
		add(path+".timeout", "%s is above the maximum of %s", time.Duration(*to), MaxTimeout)
	case time.Duration(*to) < time.Millisecond:
		add(path+".timeout", "%s is too short to measure anything", time.Duration(*to))
	}
	if maxHops < 1 || maxHops > MaxMTRHops {
		add(path+".max_hops", "%d is out of range (1 to %d)", maxHops, MaxMTRHops)
	}
	if size != nil && (*size < MinPacketSize || *size > MaxPacketSize) {
		add(path+".packet_size", "%d is out of range (%d to %d payload bytes)", *size, MinPacketSize, MaxPacketSize)
	}
	checkFamilySource(path, fam, src, add)
}

func mtrReserved(path string, labels map[string]string, add adder) {
	for _, r := range mtrLabelNames {
		if _, ok := labels[r]; ok {
			add(path+"."+r, "label %q is reserved: the mtr collector sets it", r)
		}
	}
}
