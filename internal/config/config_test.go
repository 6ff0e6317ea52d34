package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
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

// One check of names, own labels and ranges serves every section: the same
// words, the path of the list the name is already in, durations as written.
func TestSharedChecks(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"synthetic:\n  doh:\n    - {url: \"https://d.example/q\", query: a.example}\n    - {url: \"https://d.example/q\", query: b.example}\n",
			`t.yml:4: synthetic.doh[1].name: "https://d.example/q" is already the name of synthetic.doh[0]; names must be unique (set name: to tell them apart)`},
		{"mesh:\n  peers:\n    - {address: \"p.example:1\"}\n    - {address: \"p.example:1\"}\n",
			`t.yml:4: mesh.peers[1].name: "p.example:1" is already the name of mesh.peers[0]; names must be unique (set name: to tell them apart)`},
		{"bandwidth:\n  targets:\n    - {server: h}\n    - {server: h}\n",
			`t.yml:4: bandwidth.targets[1].name: "h" is already the name of bandwidth.targets[0]; names must be unique (set name: to tell them apart)`},
		{"ping:\n  targets:\n    - {host: h}\n    - {host: h}\n",
			`t.yml:4: ping.targets[1].name: "h" is already the name of ping.targets[0]; names must be unique (set name: to tell them apart)`},
		{"global: {labels: {hop: x}}\nmtr:\n  targets:\n    - {host: h}\n",
			`t.yml:1: global.labels.hop: label "hop" is reserved: the mtr collector sets it on its metrics`},
		{"mesh:\n  peers:\n    - {address: \"p.example:1\", labels: {protocol: x}}\n",
			`t.yml:3: mesh.peers[0].labels.protocol: label "protocol" is reserved: the mesh collector sets it on its metrics`},
		{"tcp:\n  targets:\n    - {address: \"a.example:1\", labels: {ip: x}}\n",
			`t.yml:3: tcp.targets[0].labels.ip: label "ip" is reserved: the exporter or Prometheus sets it`},
		{"bandwidth:\n  targets:\n    - {server: h, connect_timeout: 2m}\n",
			`t.yml:3: bandwidth.targets[0].connect_timeout: 2m is out of range (100ms to 1m)`},
		{"bandwidth:\n  targets:\n    - {server: h, busy_backoff: 1h}\n",
			`t.yml:3: bandwidth.targets[0].busy_backoff: 1h is out of range (100ms to 10m)`},
		{"bandwidth:\n  targets:\n    - {server: h, parallel: -1}\n",
			`t.yml:3: bandwidth.targets[0].parallel: -1 is out of range (1 to 128 streams)`},
		{"mesh:\n  protocols: [udp, icmp, udp]\n",
			"t.yml:2: mesh.protocols[1]: \"icmp\" is not one of udp, tcp, tcp_connect\nt.yml:2: mesh.protocols[2]: \"udp\" is listed twice"},
		{"tcp:\n  targets:\n    - {address: \"a.example\"}\n",
			`t.yml:3: tcp.targets[0].address: "a.example" is not host:port (IPv6 literals in brackets: [2001:db8::1]:443)`},
		{"mesh:\n  peers:\n    - {address: \"a.example:0\"}\n",
			`t.yml:3: mesh.peers[0].address: "a.example:0": port "0" is out of range (1 to 65535)`},
	} {
		_, err := Parse([]byte(tc.yaml), "t.yml")
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

// Defaults are data: a target or section that sets nothing gets the
// DefaultX values, and rewriting a target's own list leaves them alone.
func TestDefaultsAsData(t *testing.T) {
	c, err := Parse([]byte("dns:\n  targets:\n    - {query: a.example, valid_rcodes: [nxdomain]}\n    - {query: b.example}\nbandwidth:\n  targets:\n    - {server: h}\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.DNS.Targets[1]; got.Protocol != "udp" || !*got.RecursionDesired || len(got.ValidRcodes) != 1 || got.ValidRcodes[0] != "NOERROR" || got.Type != "A" {
		t.Errorf("dns target defaults = %+v", got)
	}
	if DefaultDNSTarget.ValidRcodes[0] != "NOERROR" || len(DefaultBandwidthTarget.Directions) != 2 {
		t.Errorf("defaults changed by a parse: %v, %v", DefaultDNSTarget.ValidRcodes, DefaultBandwidthTarget.Directions)
	}
	b := c.Bandwidth.Targets[0]
	b.Directions[0] = "changed"
	if DefaultBandwidthTarget.Directions[0] != DirectionDownload || b.BusyRetries == DefaultBandwidthTarget.BusyRetries {
		t.Error("a target shares its defaults' list or pointer")
	}
	// An empty list is unset, as a missing one.
	c2, err := Parse([]byte("dns:\n  targets:\n    - {query: a.example, valid_rcodes: []}\nmesh:\n  protocols: []\n  peers:\n    - {address: \"p.example:1\", protocols: []}\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	if rc, pr := c2.DNS.Targets[0].ValidRcodes, c2.Mesh.Peers[0].Protocols; len(rc) != 1 || rc[0] != "NOERROR" || len(pr) != 1 || pr[0] != MeshUDP {
		t.Errorf("empty lists: valid_rcodes %v, peer protocols %v; want the defaults", rc, pr)
	}
	if time.Duration(c.DNS.Interval) != DefaultDNSInterval || c.Global.ResolveInterval != DefaultGlobal.ResolveInterval {
		t.Errorf("section defaults: dns interval %v, resolve_interval %v", c.DNS.Interval, c.Global.ResolveInterval)
	}
}

// Every section of the file but global validates itself: validate finds the
// sections from Config's fields, so a section that does not implement
// section would be read and never checked.
func TestEverySectionValidates(t *testing.T) {
	var c Config
	ct := reflect.TypeOf(c)
	got := c.sections()
	n := 0
	for i := range ct.NumField() {
		f := ct.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" || tag == "global" {
			continue
		}
		if _, ok := reflect.ValueOf(&c).Elem().Field(i).Addr().Interface().(section); !ok {
			t.Errorf("section %s (%s) has no validate(*Global, adder) method", tag, f.Type)
			continue
		}
		n++
	}
	if n == 0 || len(got) != n {
		t.Errorf("sections() found %d sections, Config declares %d", len(got), n)
	}
	// The sections' own checks run: a bad value in the last one is caught.
	if _, err := Parse([]byte("mesh: {peers: [{name: x}]}\n"), "t.yml"); err == nil || !strings.Contains(err.Error(), "mesh.peers[0]") {
		t.Errorf("a mesh peer without an address: err = %v", err)
	}
}

// docs/examples/edge-node.yml shows every section (the opt-in ones
// commented out), and is valid with them switched on: the sections come
// from Config, so a new one cannot be left out of the example unnoticed.
func TestExampleShowsEverySection(t *testing.T) {
	b, err := os.ReadFile("../../docs/examples/edge-node.yml")
	if err != nil {
		t.Fatal(err)
	}
	var on []string // the file with its commented-out sections switched on
	inBlock := false
	for _, l := range strings.Split(string(b), "\n") {
		if head, ok := strings.CutPrefix(l, "# "); ok && (inBlock && strings.HasPrefix(head, " ") || regexp.MustCompile(`^[a-z_]+:\s*$`).MatchString(head)) {
			inBlock = true
			l = head
		} else {
			inBlock = false
		}
		on = append(on, l)
	}
	c, err := Parse([]byte(strings.Join(on, "\n")), "edge-node.yml (all sections on)")
	if err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeOf(*c)
	for i := range ct.NumField() {
		tag, _, _ := strings.Cut(ct.Field(i).Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if !regexp.MustCompile(`(?m)^` + tag + `:`).MatchString(strings.Join(on, "\n")) {
			t.Errorf("docs/examples/edge-node.yml does not show the %s section", tag)
		}
	}
	if len(c.Mesh.Peers) == 0 || len(c.Bandwidth.Targets) == 0 {
		t.Errorf("the commented-out sections were not read: mesh %d peers, bandwidth %d targets", len(c.Mesh.Peers), len(c.Bandwidth.Targets))
	}
}
