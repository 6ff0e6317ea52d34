package config

import (
	"testing"
	"time"
)

func TestDNSDefaults(t *testing.T) {
	c, err := Parse([]byte(`
dns:
  targets:
    - query: example.com
    - {query: example.com, type: mx, resolvers: ["9.9.9.9", "[2620:fe::fe]:5353"], protocol: tcp, recursion_desired: false, valid_rcodes: [noerror, nxdomain], min_answers: 1, interval: 1m, timeout: 2s}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.DNS.Targets[0], c.DNS.Targets[1]
	if a.Name != "example.com/A" || a.Type != "A" || a.QType != 1 || a.Protocol != "udp" || !*a.RecursionDesired ||
		len(a.ValidRcodes) != 1 || a.ValidRcodes[0] != "NOERROR" || a.IntervalD() != DefaultDNSInterval || a.TimeoutD() != DefaultDNSTimeout || len(a.Resolvers) != 0 {
		t.Errorf("defaults: %+v", a)
	}
	if b.Name != "example.com/MX" || b.QType != 15 || b.Resolvers[0] != "9.9.9.9:53" || b.Resolvers[1] != "[2620:fe::fe]:5353" ||
		b.Protocol != "tcp" || *b.RecursionDesired || b.ValidRcodes[1] != "NXDOMAIN" || b.IntervalD() != time.Minute || b.TimeoutD() != 2*time.Second {
		t.Errorf("overrides: %+v", b)
	}
}

func TestDNSErrors(t *testing.T) {
	wantErrs(t, `
dns:
  targets:
    - {type: A}
    - {query: "bad..name", type: AXFRX, protocol: quic}
    - {query: a.example, resolvers: [1.2.3.4, "1.2.3.4:53", "x:53"], valid_rcodes: [OK], min_answers: -1, labels: {resolver: x}}
    - {query: a.example, resolvers: [1.1.1.1]}
`,
		`t.yml:4: dns.targets[0].query: missing`,
		`dns.targets[1].query: "bad..name" is not a valid domain name`,
		`dns.targets[1].type: "AXFRX" is not a DNS record type`,
		`dns.targets[1].protocol: "quic" is not udp or tcp`,
		`dns.targets[2].resolvers[1]: 1.2.3.4:53 is listed twice`,
		`dns.targets[2].resolvers[2]: "x:53" is not a resolver address`,
		`dns.targets[2].valid_rcodes[0]: "OK" is not a DNS rcode`,
		`dns.targets[2].min_answers: -1 is negative`,
		`dns.targets[2].labels.resolver: label "resolver" is reserved`,
		`dns.targets[3].name: "a.example/A" is already the name of dns.targets[2]`,
	)
}
