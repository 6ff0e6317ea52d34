package config

import (
	"strings"
	"testing"
	"time"
)

func TestBandwidthOffByDefault(t *testing.T) {
	if c := Default(); len(c.Bandwidth.Targets) != 0 {
		t.Fatalf("default config has bandwidth targets: %+v", c.Bandwidth.Targets)
	}
}

func TestBandwidthDefaults(t *testing.T) {
	c, err := Parse([]byte(`
global: {labels: {site: home}, family: both}
bandwidth:
  targets:
    - server: iperf.example.net
    - server: "[2001:2::5]:5202"
      name: v6
      interval: 30m
      splay: 0s
      directions: [upload]
      duration: 4s
      warmup: 0s
      parallel: 4
      congestion: reno
      ping_host: 198.18.0.1
      ping_interval: 20ms
      idle_duration: 1s
      busy_retries: 0
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Bandwidth.Targets[0], c.Bandwidth.Targets[1]
	if h, p := a.HostPort(); h != "iperf.example.net" || p != 5201 {
		t.Errorf("HostPort = %s %d", h, p)
	}
	if a.Name != "iperf.example.net" || a.PingHost != "iperf.example.net" || a.Family != FamilyAuto ||
		time.Duration(a.Interval) != time.Hour || time.Duration(*a.Splay) != time.Hour ||
		strings.Join(a.Directions, ",") != "download,upload" || a.Protocol != "tcp" ||
		time.Duration(a.Duration) != 10*time.Second || time.Duration(*a.Warmup) != time.Second || a.Parallel != 1 ||
		time.Duration(a.Timeout) != 20*time.Second || time.Duration(a.ConnectTimeout) != 5*time.Second ||
		*a.BusyRetries != 3 || time.Duration(a.BusyBackoff) != 5*time.Second ||
		time.Duration(a.PingInterval) != 100*time.Millisecond || time.Duration(a.PingTimeout) != 2*time.Second ||
		time.Duration(a.IdleDuration) != 3*time.Second {
		t.Errorf("defaults = %+v", a)
	}
	if h, p := b.HostPort(); h != "2001:2::5" || p != 5202 || b.PingHost != "198.18.0.1" || *b.Splay != 0 || *b.Warmup != 0 ||
		time.Duration(b.Timeout) != 14*time.Second || *b.BusyRetries != 0 {
		t.Errorf("overrides = %+v (%s %d)", b, h, p)
	}
	if s := c.Bandwidth.Scale(); len(s) != 6 || s.Grade(45*time.Millisecond) != "B" {
		t.Errorf("default grades = %+v", s)
	}
}

func TestBandwidthErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"bandwidth:\n  targets:\n    - name: x\n", "t.yml:3: bandwidth.targets[0].server: missing"},
		{"bandwidth:\n  targets:\n    - server: \"a:b:c\"\n", "bandwidth.targets[0].server: \"a:b:c\" is not host[:port]"},
		{"bandwidth:\n  targets:\n    - server: h:70000\n", "port \"70000\""},
		{"bandwidth:\n  targets:\n    - server: h\n      interval: 10s\n", "t.yml:4: bandwidth.targets[0].interval: 10s is below the minimum of 1m0s"},
		{"bandwidth:\n  targets:\n    - server: h\n      duration: 1500ms\n", "bandwidth.targets[0].duration: 1.5s is not a whole number of seconds"},
		{"bandwidth:\n  targets:\n    - server: h\n      duration: 3s\n      warmup: 3s\n", "bandwidth.targets[0].warmup: 3s leaves no time under load"},
		{"bandwidth:\n  targets:\n    - server: h\n      directions: [down]\n", "t.yml:4: bandwidth.targets[0].directions[0]: \"down\" is not download or upload"},
		{"bandwidth:\n  targets:\n    - server: h\n      directions: [upload, upload]\n", "directions[1]: \"upload\" is listed twice"},
		{"bandwidth:\n  targets:\n    - server: h\n      protocol: udp\n", "protocol: \"udp\" is not supported"},
		{"bandwidth:\n  targets:\n    - server: h\n      duration: 5s\n      timeout: 5s\n", "timeout: 5s leaves no time for the test itself"},
		{"bandwidth:\n  targets:\n    - server: h\n      family: both\n", "family: \"both\" is not one of auto, ip4, ip6"},
		{"bandwidth:\n  targets:\n    - server: h\n      labels: {direction: x}\n", "bandwidth.targets[0].labels.direction: label \"direction\" is reserved: the bandwidth collector sets it"},
		{"global: {labels: {grade: x}}\nbandwidth:\n  targets:\n    - server: h\n", "global.labels.grade: label \"grade\" is reserved: the bandwidth collector sets it"},
		{"bandwidth:\n  targets:\n    - server: h\n    - server: h\n", "bandwidth.targets[1].name: \"h\" is already the name"},
		{"bandwidth:\n  targets:\n    - server: h\n      splay: 2h\n", "splay: 2h0m0s is longer than the interval"},
		{"bandwidth:\n  targets:\n    - server: h\n      busy_retries: 11\n", "busy_retries: 11 is out of range"},
		{"bandwidth:\n  targets:\n    - server: h\n      ping_interval: 1s\n      idle_duration: 2s\n", "idle_duration: 2s is out of range"},
		{"bandwidth:\n  targets:\n    - server: h\n      congestion: \"Reno;\"\n", "congestion: \"Reno;\" is not a congestion control name"},
		{"bandwidth:\n  targets:\n    - server: h\n      ping_host: \"bad host\"\n", "ping_host: \"bad host\" is neither"},
		{"bandwidth:\n  targets:\n    - server: h\n      speed: 1\n", "speed"},
		{"bandwidth:\n  grades:\n    - {grade: A, below: 30ms}\n    - {grade: B, below: 20ms}\n    - {grade: F}\n", "t.yml:4: bandwidth.grades[1]: band \"B\": bound 20ms is not above the previous band's 30ms"},
		{"bandwidth:\n  grades:\n    - {grade: A, below: 30ms}\n    - {grade: F, below: 1s}\n", "the last band (\"F\") takes everything else"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml), "t.yml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
}

func TestBandwidthCustomGrades(t *testing.T) {
	c, err := Parse([]byte("bandwidth:\n  grades:\n    - {grade: ok, below: 50ms}\n    - {grade: bloated}\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Bandwidth.Scale(); s.Grade(49*time.Millisecond) != "ok" || s.Grade(time.Second) != "bloated" {
		t.Errorf("custom grades = %+v", s)
	}
}
