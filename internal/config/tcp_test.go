package config

import (
	"testing"
	"time"
)

func TestTCPDefaults(t *testing.T) {
	c, err := Parse([]byte(`
global: {labels: {site: x}}
tcp:
  interval: 20s
  targets:
    - address: example.com:443
    - {address: "[2001:db8::1]:22", name: ssh, family: ip6, timeout: 1s}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.TCP.Targets[0], c.TCP.Targets[1]
	if a.Name != "example.com:443" || a.IntervalD() != 20*time.Second || a.TimeoutD() != DefaultTCPTimeout || a.Family != FamilyAuto {
		t.Errorf("defaults: %+v", a)
	}
	if b.Name != "ssh" || b.TimeoutD() != time.Second || b.Family != FamilyIP6 {
		t.Errorf("overrides: %+v", b)
	}
}

func TestTCPErrors(t *testing.T) {
	wantErrs(t, `
tcp:
  targets:
    - {name: a}
    - {address: "example.com"}
    - {address: "2001:db8::1:22"}
    - {address: "example.com:0"}
    - {address: "bad_host!:80", labels: {address: x}}
    - {address: "gateway:80", interval: 5ms}
`,
		`t.yml:4: tcp.targets[0].address: missing`,
		`tcp.targets[1].address: "example.com" is not host:port`,
		`tcp.targets[2].address: "2001:db8::1:22" is not host:port`,
		`tcp.targets[3].address: "example.com:0": port "0" is out of range`,
		`tcp.targets[4].address: "bad_host!:80": "bad_host!" is neither`,
		`tcp.targets[4].labels.address: label "address" is reserved`,
		`tcp.targets[5].interval: 5ms is below the minimum`,
	)
}
