package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/smokemon/smokemon/internal/dnsmsg"
)

// DNSConfig is the dns section: DNS lookup probes. Off (no targets) unless configured.
type DNSConfig struct {
	Interval Duration    `yaml:"interval"`
	Timeout  Duration    `yaml:"timeout"`
	Targets  []DNSTarget `yaml:"targets"`
}

// DNSTarget is one name and type, asked of one or more resolvers.
type DNSTarget struct {
	Query  string            `yaml:"query"` // the name looked up
	Type   string            `yaml:"type"`  // A unless set; a type name (AAAA, MX, TXT, …) or TYPEn
	Name   string            `yaml:"name"`  // series name; "query/type" when unset
	Labels map[string]string `yaml:"labels"`
	// Resolvers (ip or ip:port) are asked each round, each its own series;
	// empty means every nameserver in /etc/resolv.conf under --path.rootfs.
	Resolvers []string `yaml:"resolvers"`
	Interval  Duration `yaml:"interval"`
	Timeout   Duration `yaml:"timeout"`
	// Protocol is udp (falling back to TCP when the answer is truncated) or tcp.
	Protocol         string   `yaml:"protocol"`
	RecursionDesired *bool    `yaml:"recursion_desired"` // true unless set
	ValidRcodes      []string `yaml:"valid_rcodes"`      // NOERROR unless set
	MinAnswers       int      `yaml:"min_answers"`       // fewer answer records is a failure

	// QType is Type as a number, valid after Load.
	QType uint16 `yaml:"-"`
}

// IntervalD and TimeoutD are the resolved schedule, valid after Load.
func (t *DNSTarget) IntervalD() time.Duration { return time.Duration(t.Interval) }
func (t *DNSTarget) TimeoutD() time.Duration  { return time.Duration(t.Timeout) }

// DefaultDNS and DefaultDNSTarget hold the defaults (see fillDefaults).
var (
	DefaultDNS       = DNSConfig{Interval: Duration(DefaultDNSInterval), Timeout: Duration(DefaultDNSTimeout)}
	DefaultDNSTarget = DNSTarget{Type: "A", Protocol: "udp", RecursionDesired: boolp(true), ValidRcodes: []string{"NOERROR"}}
)

// Defaults of the dns section.
const (
	DefaultDNSInterval = 30 * time.Second
	DefaultDNSTimeout  = 5 * time.Second
)

var dnsLabels = ownLabels{"dns", []string{"resolver", "query", "type", "rcode"}}

func (c *DNSConfig) validate(g *Global, add adder) {
	fillSection(c, &DefaultDNS, &c.Interval, &c.Timeout)
	checkSchedule("dns", c.Interval, c.Timeout, time.Duration(c.Interval), "the interval", add)
	if len(c.Targets) > 0 {
		checkOwnLabels("global.labels", g.Labels, dnsLabels, add)
	}
	names := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("dns.targets[%d]", i)
		fillDefaults(t, &DefaultDNSTarget)
		t.QType = checkQuestion(p, "every target needs a name to look up", t.Query, &t.Type, add)
		if t.Name == "" {
			t.Name = t.Query + "/" + t.Type
		}
		uniqueName("dns.targets", i, t.Name, names, add)
		checkLabels(p+".labels", t.Labels, dnsLabels, add)
		seen := map[string]bool{}
		for j, r := range t.Resolvers {
			n, err := NormalizeResolver(r)
			if err != nil {
				add(fmt.Sprintf("%s.resolvers[%d]", p, j), "%v", err)
				continue
			}
			if seen[n] {
				add(fmt.Sprintf("%s.resolvers[%d]", p, j), "%s is listed twice", n)
			}
			seen[n] = true
			t.Resolvers[j] = n
		}
		if t.Interval == 0 {
			t.Interval = c.Interval
		}
		if t.Timeout == 0 {
			t.Timeout = min(c.Timeout, t.Interval)
		}
		checkSchedule(p, t.Interval, t.Timeout, time.Duration(t.Interval), "the interval", add)
		if t.Protocol != "udp" && t.Protocol != "tcp" {
			add(p+".protocol", "%q is not udp or tcp", t.Protocol)
		}
		for j, rc := range t.ValidRcodes {
			n, ok := dnsmsg.ParseRcode(rc)
			if !ok {
				add(fmt.Sprintf("%s.valid_rcodes[%d]", p, j), "%q is not a DNS rcode (NOERROR, NXDOMAIN, SERVFAIL, …)", rc)
				continue
			}
			t.ValidRcodes[j] = dnsmsg.RcodeString(n)
		}
		if t.MinAnswers < 0 {
			add(p+".min_answers", "%d is negative", t.MinAnswers)
		}
	}
}

// checkQuestion validates a DNS question (name and record type, A unless
// set), upper-cases the type and returns it as a number.
func checkQuestion(p, missing, query string, typ *string, add adder) uint16 {
	switch {
	case query == "":
		add(p+".query", "missing: %s", missing)
	case query != "." && !validHost(query):
		add(p+".query", "%q is not a valid domain name", query)
	}
	*typ = strings.ToUpper(*typ)
	if qt, ok := dnsmsg.ParseType(*typ); ok {
		return qt
	}
	add(p+".type", "%q is not a DNS record type (A, AAAA, MX, TXT, NS, …)", *typ)
	return 0
}
