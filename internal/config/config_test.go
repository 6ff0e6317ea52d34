package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultPingsLocalhostOnly(t *testing.T) {
	c := Default()
	if len(c.Ping.Targets) != 1 || c.Ping.Targets[0].Host != "localhost" {
		t.Fatalf("default targets = %+v, want localhost only", c.Ping.Targets)
	}
	tg := c.Ping.Targets[0]
	if tg.IntervalD() != time.Second || tg.TimeoutD() != time.Second || tg.Size() != 56 || tg.Family != FamilyAuto {
		t.Errorf("default target settings = %+v", tg)
	}
}

func TestInheritanceAndOverrides(t *testing.T) {
	c, err := Parse([]byte(`
global:
  interval: 2s
  packet_size: 100
  dscp: EF
  labels: {site: home}
ping:
  targets:
    - host: 198.18.0.1
    - host: example.com
      name: web
      interval: 500ms
      tos: 32
      family: both
      labels: {isp: acme}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Ping.Targets[0], c.Ping.Targets[1]
	if a.Name != "198.18.0.1" || a.IntervalD() != 2*time.Second || a.TimeoutD() != 2*time.Second || a.Size() != 100 || a.TOSByte() != 46<<2 {
		t.Errorf("inherited target = %+v (tos %d)", a, a.TOSByte())
	}
	// A target's own tos beats an inherited dscp; its timeout follows its own interval.
	if b.Name != "web" || b.IntervalD() != 500*time.Millisecond || b.TimeoutD() != 500*time.Millisecond || b.TOSByte() != 32 || b.Family != FamilyBoth {
		t.Errorf("overriding target = %+v (tos %d)", b, b.TOSByte())
	}
	if b.Labels["isp"] != "acme" {
		t.Errorf("labels = %v", b.Labels)
	}
}

// Every error must name file, line and field so a person can act on it.
func TestErrorsNameFileLineAndField(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "ping:\n  targets:\n    - host: a.example\n      intervall: 1s\n",
			[]string{"cfg.yml:4:", "ping.targets[0].intervall", `unknown field "intervall"`}},
		{"bad duration", "global:\n  interval: 1x\n",
			[]string{"cfg.yml:2:", "global.interval", `"1x" is not a duration`}},
		{"duplicate names", "ping:\n  targets:\n    - host: a.example\n    - host: b.example\n      name: a.example\n",
			[]string{"cfg.yml:5:", "ping.targets[1].name", "already the name of ping.targets[0]"}},
		{"reserved label", "ping:\n  targets:\n    - host: a.example\n      labels:\n        target: x\n",
			[]string{"cfg.yml:5:", "ping.targets[0].labels.target", "reserved"}},
		{"invalid label", "global:\n  labels:\n    1bad: x\n",
			[]string{"cfg.yml:3:", "global.labels.1bad", "not a valid Prometheus label name"}},
		{"timeout above interval", "ping:\n  targets:\n    - host: a.example\n      interval: 1s\n      timeout: 2s\n",
			[]string{"cfg.yml:5:", "ping.targets[0].timeout", "longer than the interval"}},
		{"bad host", "ping:\n  targets:\n    - host: 'not a host!'\n",
			[]string{"cfg.yml:3:", "ping.targets[0].host", "neither an IP address nor a valid host name"}},
		{"missing host", "ping:\n  targets:\n    - name: x\n",
			[]string{"cfg.yml:3:", "ping.targets[0].host", "missing"}},
		{"bad family", "global:\n  family: ipv4\n",
			[]string{"cfg.yml:2:", "global.family", "not one of auto, ip4, ip6, both"}},
		{"family vs literal", "ping:\n  targets:\n    - host: 198.18.0.1\n      family: ip6\n",
			[]string{"cfg.yml:4:", "ping.targets[0].family", "literal address"}},
		{"packet size", "global:\n  packet_size: 4\n",
			[]string{"cfg.yml:2:", "global.packet_size", "out of range"}},
		{"tos and dscp", "global:\n  tos: 4\n  dscp: EF\n",
			[]string{"cfg.yml:", "global.dscp", "not both"}},
		{"bad dscp", "global:\n  dscp: XX\n",
			[]string{"cfg.yml:2:", "global.dscp", "not a DSCP value"}},
		{"wrong type", "ping:\n  targets: 5\n",
			[]string{"cfg.yml:2:", "ping.targets"}},
		{"syntax", "global:\n  interval: [1s\n",
			[]string{"cfg.yml:"}},
		{"interval too short", "global:\n  interval: 1ms\n",
			[]string{"cfg.yml:2:", "global.interval", "below the minimum"}},
		{"bad source", "global:\n  source: 'eth0/1'\n",
			[]string{"cfg.yml:2:", "global.source", "neither an IP address nor an interface name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "cfg.yml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	_, err := Parse([]byte("ping:\n  targets:\n    - host: a.example\n      timeout: 9s\n    - host: a.example\n"), "c.yml")
	if err == nil || strings.Count(err.Error(), "\n") < 1 {
		t.Fatalf("want two errors, got %v", err)
	}
}

func TestEmptyFileIsValid(t *testing.T) {
	c, err := Parse(nil, "empty.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ping.Targets) != 0 || time.Duration(c.Global.Interval) != time.Second {
		t.Errorf("empty config = %+v", c)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yml") {
		t.Fatalf("err = %v", err)
	}
}

func TestAddHosts(t *testing.T) {
	c := Default()
	if err := c.AddHosts([]string{"198.18.0.9"}); err != nil {
		t.Fatal(err)
	}
	if got := c.Ping.Targets[1]; got.Host != "198.18.0.9" || got.IntervalD() != time.Second {
		t.Errorf("added target = %+v", got)
	}
	if err := c.AddHosts([]string{"bad host"}); err == nil {
		t.Error("bad host accepted")
	}
}

func TestExampleConfigsAreValid(t *testing.T) {
	files, _ := filepath.Glob("../../docs/examples/*.yml")
	if len(files) == 0 {
		t.Fatal("no example configs under docs/examples")
	}
	for _, f := range files {
		if _, err := LoadFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// FuzzParse: whatever the bytes, Parse returns a config or an error, never
// panics, and a config it accepts has every setting resolved.
func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	for _, s := range []string{
		"global:\n  interval: 2s\nping:\n  targets:\n    - host: gateway\n      family: both\n",
		"ping:\n  targets:\n    - host: a\n      labels: {x: y}\n      dscp: AF41\n",
		"global: {timeout: 500ms, interval: 1s, source: eth0}\n",
		"ping: {targets: [{host: '::1', packet_size: 1400, tos: 255}]}\n",
		"- a\n- b\n", "global: 5\n", "&a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("../../docs/examples/edge-node.yml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yml") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		for _, tg := range c.Ping.Targets {
			if tg.IntervalD() < MinInterval || tg.TimeoutD() <= 0 || tg.TimeoutD() > tg.IntervalD() || tg.PacketSize == nil || tg.Name == "" {
				t.Fatalf("accepted target with unresolved settings: %+v", tg)
			}
			_ = tg.TOSByte()
		}
	})
}
