package config

import (
	"fmt"
	"net"
	"strconv"
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

var tcpLabelNames = []string{"address", "ip"}

func (c *TCPConfig) validate(g *Global, add adder) {
	checkSection("tcp", &c.Interval, &c.Timeout, DefaultTCPInterval, DefaultTCPTimeout, add)
	if len(c.Targets) > 0 {
		checkReservedFor("global.labels", g.Labels, tcpLabelNames, add)
	}
	names := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("tcp.targets[%d]", i)
		host, port, err := net.SplitHostPort(t.Address)
		switch {
		case t.Address == "":
			add(p+".address", "missing: every target needs an address (host:port)")
		case err != nil:
			add(p+".address", "%q is not host:port (IPv6 literals in brackets: [2001:db8::1]:443)", t.Address)
		case !validHost(host) || host == GatewayKeyword:
			add(p+".address", "%q: %q is neither an IP address nor a valid host name", t.Address, host)
		default:
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				add(p+".address", "%q: port %q is out of range (1 to 65535)", t.Address, port)
			}
		}
		if t.Name == "" {
			t.Name = t.Address
		}
		uniqueName("tcp", p, t.Name, names, i, add)
		checkLabels(p+".labels", t.Labels, add)
		checkReservedFor(p+".labels", t.Labels, tcpLabelNames, add)
		t.ServiceProbe.fill(p, g, c.Interval, c.Timeout, add)
	}
}
