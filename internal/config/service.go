package config

import "time"

// ServiceProbe holds the settings every http, dns, tcp and synthetic target
// shares: its schedule and how it finds its address.
type ServiceProbe struct {
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Family   Family   `yaml:"family"` // auto (IPv4 first), ip4 or ip6
	// Resolver is a DNS server (ip or ip:port) for the target's host name;
	// empty means the nameservers of /etc/resolv.conf (under --path.rootfs).
	Resolver string `yaml:"resolver"`
}

// IntervalD and TimeoutD are the resolved schedule, valid after Load.
func (p *ServiceProbe) IntervalD() time.Duration { return time.Duration(p.Interval) }
func (p *ServiceProbe) TimeoutD() time.Duration  { return time.Duration(p.Timeout) }

// fillSection fills a section's unset settings from its defaults (def); an
// unset timeout is the default one or the interval, whichever is shorter.
// iv and to are the section's own interval and timeout.
func fillSection[T any](c, def *T, iv, to *Duration) {
	unset := *to == 0
	fillDefaults(c, def)
	if unset {
		*to = min(*to, *iv)
	}
}

// fill inherits the section's schedule and the global family, then checks.
func (p *ServiceProbe) fill(path string, g *Global, iv, to Duration, add adder) {
	if p.Interval == 0 {
		p.Interval = iv
	}
	if p.Timeout == 0 {
		p.Timeout = min(to, p.Interval)
	}
	checkSchedule(path, p.Interval, p.Timeout, time.Duration(p.Interval), "the interval", add)
	oneFamily(&p.Family, g)
	switch p.Family {
	case FamilyAuto, FamilyIP4, FamilyIP6:
	default:
		add(path+".family", "%q is not one of auto, ip4, ip6", p.Family)
	}
	if p.Resolver != "" {
		if r, err := NormalizeResolver(p.Resolver); err != nil {
			add(path+".resolver", "%v", err)
		} else {
			p.Resolver = r
		}
	}
}
