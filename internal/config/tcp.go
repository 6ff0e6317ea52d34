package config

import (
	"fmt"
	"time"
)

// TCPConfig is the tcp section: TCP connect probes. Off (no targets) unless configured.
type TCPConfig struct {
	Interval Duration    `yaml:"interval"`
	Timeout  Duration    `yaml:"timeout"`
	Targets  []TCPTarget `yaml:"targets"`
}

// TCPTarget is one host:port whose handshake is timed.
type TCPTarget struct {
	Address      string            `yaml:"address"` // host:port; IPv6 literals in brackets
	Name         string            `yaml:"name"`    // series name; the address when unset
	Labels       map[string]string `yaml:"labels"`
	ServiceProbe `yaml:",inline"`
}

// Defaults of the tcp section.
const (
	DefaultTCPInterval = 10 * time.Second
	DefaultTCPTimeout  = 5 * time.Second
)

// DefaultTCP holds the section's defaults (see fillDefaults).
var DefaultTCP = TCPConfig{Interval: Duration(DefaultTCPInterval), Timeout: Duration(DefaultTCPTimeout)}

var tcpLabels = ownLabels{"tcp", []string{"address", "ip"}}

func (c *TCPConfig) validate(g *Global, add adder) {
	fillSection(c, &DefaultTCP, &c.Interval, &c.Timeout)
	checkSchedule("tcp", c.Interval, c.Timeout, time.Duration(c.Interval), "the interval", add)
	if len(c.Targets) > 0 {
		checkOwnLabels("global.labels", g.Labels, tcpLabels, add)
	}
	names := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("tcp.targets[%d]", i)
		checkHostPort(p+".address", t.Address, "every target needs an address (host:port)", "[2001:db8::1]:443", add)
		if t.Name == "" {
			t.Name = t.Address
		}
		uniqueName("tcp.targets", i, t.Name, names, add)
		checkLabels(p+".labels", t.Labels, tcpLabels, add)
		t.ServiceProbe.fill(p, g, c.Interval, c.Timeout, add)
	}
}
