package config

import (
	"fmt"
	"time"
)

// PingConfig is the ping collector's section.
type PingConfig struct {
	Targets []Target `yaml:"targets"`
}

// Target is one ping target after defaults have been applied.
type Target struct {
	Host          string            `yaml:"host"`
	Name          string            `yaml:"name"`
	Labels        map[string]string `yaml:"labels"`
	ProbeDefaults `yaml:",inline"`
}

// Resolved settings, valid after Load.
func (t *Target) IntervalD() time.Duration { return time.Duration(t.Interval) }
func (t *Target) TimeoutD() time.Duration  { return time.Duration(t.Timeout) }
func (t *Target) Size() int                { return *t.PacketSize }

// TOSByte is the IPv4 TOS / IPv6 traffic class byte the target's probes carry.
func (t *Target) TOSByte() int {
	if t.DSCP != "" {
		d, _ := parseDSCP(t.DSCP)
		return d << 2
	}
	return *t.TOS
}

func (c *PingConfig) validate(g *Global, add adder) {
	names := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("ping.targets[%d]", i)
		switch {
		case t.Host == "":
			add(p+".host", "missing: every target needs a host (name, address or %q)", GatewayKeyword)
		case !validHost(t.Host):
			add(p+".host", "%q is neither an IP address nor a valid host name", t.Host)
		}
		if t.Name == "" {
			t.Name = t.Host
		}
		uniqueName("ping.targets", i, t.Name, names, add)
		checkLabels(p+".labels", t.Labels, ownLabels{}, add)
		inherit(&t.ProbeDefaults, &g.ProbeDefaults)
		checkProbe(p, &t.ProbeDefaults, add)
		checkLiteralFamily(p, t.Host, t.Family, add)
	}
}

// inherit fills unset target settings from the global defaults. tos and
// dscp are one setting: a target that sets either inherits neither.
func inherit(t, g *ProbeDefaults) {
	tos, dscp := t.TOS, t.DSCP
	fillDefaults(t, g)
	if tos != nil || dscp != "" {
		t.TOS, t.DSCP = tos, dscp
	}
}

func checkProbe(path string, p *ProbeDefaults, add adder) {
	iv := time.Duration(p.Interval)
	// An unset global timeout lets each target's timeout follow its own interval.
	if p.Timeout == 0 && path != "global" {
		p.Timeout = Duration(min(iv, DefaultTimeout))
	}
	checkSchedule(path, p.Interval, p.Timeout, iv, "the interval", add)
	if p.PacketSize != nil {
		checkRange(path+".packet_size", *p.PacketSize, MinPacketSize, MaxPacketSize, "payload bytes", add)
	}
	if p.TOS != nil && p.DSCP != "" {
		add(path+".dscp", "set tos or dscp, not both")
	}
	if p.TOS != nil {
		checkRange(path+".tos", *p.TOS, 0, 255, "", add)
	}
	if p.DSCP != "" {
		if _, err := parseDSCP(p.DSCP); err != nil {
			add(path+".dscp", "%v", err)
		}
	}
	checkFamilySource(path, p.Family, p.Source, add)
}
