package config

import (
	"strings"
	"testing"
	"time"
)

func TestMTRDefaultsAndOverrides(t *testing.T) {
	c, err := Parse([]byte(`
global:
  packet_size: 100
  family: ip6
mtr:
  targets:
    - host: example.com
    - host: 198.18.10.2
      name: lab
      family: ip4
      interval: 1s
      probes: 4
      max_hops: 12
      labels: {site: home}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.MTR.Targets[0], c.MTR.Targets[1]
	if a.Name != "example.com" || a.IntervalD() != 10*time.Second || a.Probes != 5 || a.MaxHops != 30 || a.TimeoutD() != 2*time.Second || *a.PacketSize != 100 || a.Family != FamilyIP6 {
		t.Errorf("defaults: %+v", a)
	}
	// The default timeout follows the target's own sweep spacing.
	if b.IntervalD() != time.Second || b.Probes != 4 || b.MaxHops != 12 || b.TimeoutD() != 250*time.Millisecond || b.Labels["site"] != "home" {
		t.Errorf("overrides: %+v", b)
	}
	if c, _ := Parse(nil, "empty.yml"); len(c.MTR.Targets) != 0 {
		t.Error("mtr is on without a config")
	}
}

func TestMTRErrors(t *testing.T) {
	_, err := Parse([]byte(`global:
  labels: {hop: x}
mtr:
  timeout: 5s
  targets:
    - host: ""
    - host: gateway
    - host: 198.18.10.2
      family: ip6
    - host: a.example
      probes: 0
      max_hops: 300
    - host: b.example
      interval: 1s
      probes: 10
      timeout: 200ms
    - host: b.example
      labels: {hop: "1"}
`), "m.yml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"m.yml:2: global.labels.hop: label \"hop\" is reserved",
		"m.yml:4: mtr.timeout: 5s is longer than interval/probes (2s)",
		"m.yml:6: mtr.targets[0].host: missing",
		"m.yml:7: mtr.targets[1].host: \"gateway\" is neither",
		"m.yml:9: mtr.targets[2].family: \"ip6\" cannot be used with the literal address",
		"mtr.targets[4].timeout: 200ms is longer than interval/probes (100ms)",
		"mtr.targets[3].max_hops: 300 is out of range",
		"mtr.targets[5].name: \"b.example\" is already the name of mtr.targets[4]",
		"mtr.targets[5].labels.hop: label \"hop\" is reserved",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
