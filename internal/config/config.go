// Package config loads and validates the smokemon_exporter configuration file.
//
// Every error names the file, the line and the field (as a path such as
// ping.targets[2].interval), so a person can fix it without guessing; a reload
// that fails keeps the running configuration (the caller's job: Load never
// returns a half-valid Config).
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed default.yml
var defaultYAML []byte

// DefaultName is how the embedded configuration is named in messages.
const DefaultName = "<embedded default>"

// GatewayKeyword as a host means "the default gateway of the target's address family".
const GatewayKeyword = "gateway"

// Family selects which addresses of a host are probed.
type Family string

const (
	FamilyAuto Family = "auto" // IPv4 when the host has an IPv4 address, else IPv6
	FamilyIP4  Family = "ip4"
	FamilyIP6  Family = "ip6"
	FamilyBoth Family = "both" // one series per family
)

// Each is the families a target of this setting is probed in: "both" is one
// series per family, every other setting one series.
func (f Family) Each() []Family {
	if f == FamilyBoth {
		return []Family{FamilyIP4, FamilyIP6}
	}
	return []Family{f}
}

// Config is a whole, validated configuration.
type Config struct {
	Global    Global          `yaml:"global"`
	Ping      PingConfig      `yaml:"ping"`
	MTR       MTRConfig       `yaml:"mtr"`
	HTTP      HTTPConfig      `yaml:"http"`
	DNS       DNSConfig       `yaml:"dns"`
	TCP       TCPConfig       `yaml:"tcp"`
	Synthetic SyntheticConfig `yaml:"synthetic"`
	Bandwidth BandwidthConfig `yaml:"bandwidth"`
	Mesh      MeshConfig      `yaml:"mesh"`

	// Source is the file the config came from (DefaultName for the embedded one).
	Source string `yaml:"-"`
}

// Global holds node-wide settings and the defaults every target inherits.
type Global struct {
	// NodeName identifies this node in info metrics; empty means the host name.
	NodeName        string            `yaml:"node_name"`
	ResolveInterval Duration          `yaml:"resolve_interval"`
	Labels          map[string]string `yaml:"labels"`
	ProbeDefaults   `yaml:",inline"`
}

// ProbeDefaults are the per-target settings that a target may override.
type ProbeDefaults struct {
	Interval   Duration `yaml:"interval"`
	Timeout    Duration `yaml:"timeout"`
	PacketSize *int     `yaml:"packet_size"`
	TOS        *int     `yaml:"tos"`
	DSCP       string   `yaml:"dscp"`
	Family     Family   `yaml:"family"`
	Source     string   `yaml:"source"`
}

// PingConfig is the ping collector's section.
type PingConfig struct {
	Targets []Target `yaml:"targets"`
}

// Target is one ping target after defaults have been applied.
type Target struct {
	Host          string            `yaml:"host"`
	Name          string            `yaml:"name"`
	Labels        map[string]string `yaml:"labels"`
	ProbeDefaults `yaml:",inline"`
}

// Resolved settings, valid after Load.
func (t *Target) IntervalD() time.Duration { return time.Duration(t.Interval) }
func (t *Target) TimeoutD() time.Duration  { return time.Duration(t.Timeout) }
func (t *Target) Size() int                { return *t.PacketSize }

// TOSByte is the IPv4 TOS / IPv6 traffic class byte the target's probes carry.
func (t *Target) TOSByte() int {
	if t.DSCP != "" {
		d, _ := parseDSCP(t.DSCP)
		return d << 2
	}
	return *t.TOS
}

// Duration is a time.Duration that reads Go ("1.5s") and Prometheus ("1m30s") syntax.
type Duration time.Duration

// UnmarshalYAML reports a bad duration as a type error so the loader can name its line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (examples: 500ms, 1s, 1m30s)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Limits that keep a typo from becoming a flood or a stuck probe.
const (
	MinInterval    = 10 * time.Millisecond
	MaxTimeout     = 30 * time.Second
	MinPacketSize  = 8 // the probe's token
	MaxPacketSize  = 65000
	DefaultTimeout = 5 * time.Second // cap on the timeout a target inherits from its interval
)

var (
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// Reserved labels are set by the exporter itself or by Prometheus.
	reservedLabels = map[string]bool{
		"target": true, "family": true, "ip": true, "host": true, "job": true,
		"instance": true, "collector": true, "node": true, "reason": true,
		"le": true, "quantile": true,
	}
)

// Default returns the embedded configuration: ping localhost, nothing else.
func Default() *Config {
	c, err := Parse(defaultYAML, DefaultName)
	if err != nil {
		panic("embedded default config is invalid: " + err.Error())
	}
	return c
}

// DefaultYAML is the embedded configuration's text (for --config.print-default).
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// LoadFile reads and validates a configuration file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates YAML; name is used in error messages.
func Parse(data []byte, name string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, rewriteYAMLError(name, nil, err)
	}
	idx := indexLines(&root)
	c := &Config{Source: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file (io.EOF) is an empty config: all defaults, no targets.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, rewriteYAMLError(name, idx, err)
	}
	if errs := c.validate(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = fmt.Sprintf("%s:%d: %s: %s", name, idx.line(e.path), e.path, e.msg)
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return c, nil
}

// AddHosts appends quick-start targets given on the command line.
func (c *Config) AddHosts(hosts []string) error {
	for _, h := range hosts {
		c.Ping.Targets = append(c.Ping.Targets, Target{Host: h})
	}
	if errs := c.validate(); len(errs) > 0 {
		return fmt.Errorf("command line: %s: %s", errs[0].path, errs[0].msg)
	}
	return nil
}

type fieldError struct{ path, msg string }

// adder records a validation error at a field path such as "http.targets[2].url".
type adder func(path, format string, a ...any)

func (c *Config) validate() []fieldError {
	var errs []fieldError
	add := func(path, format string, a ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, a...)})
	}

	g := &c.Global
	if g.ResolveInterval == 0 {
		g.ResolveInterval = Duration(5 * time.Minute)
	} else if time.Duration(g.ResolveInterval) < time.Second {
		add("global.resolve_interval", "must be at least 1s")
	}
	checkLabels("global.labels", g.Labels, add)
	if g.Interval == 0 {
		g.Interval = Duration(time.Second)
	}
	if g.PacketSize == nil {
		g.PacketSize = intp(56)
	}
	if g.TOS == nil && g.DSCP == "" {
		g.TOS = intp(0)
	}
	if g.Family == "" {
		g.Family = FamilyAuto
	}
	checkProbe("global", &g.ProbeDefaults, add)

	names := map[string]int{}
	for i := range c.Ping.Targets {
		t := &c.Ping.Targets[i]
		p := fmt.Sprintf("ping.targets[%d]", i)
		switch {
		case t.Host == "":
			add(p+".host", "missing: every target needs a host (name, address or %q)", GatewayKeyword)
		case !validHost(t.Host):
			add(p+".host", "%q is neither an IP address nor a valid host name", t.Host)
		}
		if t.Name == "" {
			t.Name = t.Host
		}
		if j, dup := names[t.Name]; dup {
			add(p+".name", "%q is already the name of ping.targets[%d]; names must be unique (set name: to tell them apart)", t.Name, j)
		} else {
			names[t.Name] = i
		}
		checkLabels(p+".labels", t.Labels, add)
		inherit(&t.ProbeDefaults, &g.ProbeDefaults)
		checkProbe(p, &t.ProbeDefaults, add)
		checkLiteralFamily(p, t.Host, t.Family, add)
	}
	// Each probe section validates itself and fills in its defaults.
	c.MTR.validate(&c.Global, add)
	c.HTTP.validate(&c.Global, add)
	c.DNS.validate(&c.Global, add)
	c.TCP.validate(&c.Global, add)
	c.Synthetic.validate(&c.Global, add)
	c.Bandwidth.validate(&c.Global, add)
	c.Mesh.validate(&c.Global, add)
	return errs
}

// inherit fills unset target settings from the global defaults.
func inherit(t, g *ProbeDefaults) {
	if t.Interval == 0 {
		t.Interval = g.Interval
	}
	if t.Timeout == 0 {
		t.Timeout = g.Timeout
	}
	if t.PacketSize == nil {
		t.PacketSize = g.PacketSize
	}
	if t.TOS == nil && t.DSCP == "" {
		t.TOS, t.DSCP = g.TOS, g.DSCP
	}
	if t.Family == "" {
		t.Family = g.Family
	}
	if t.Source == "" {
		t.Source = g.Source
	}
}

func checkProbe(path string, p *ProbeDefaults, add adder) {
	iv := time.Duration(p.Interval)
	if iv < MinInterval {
		add(path+".interval", "%s is below the minimum of %s", iv, MinInterval)
	}
	// An unset global timeout lets each target's timeout follow its own interval.
	if p.Timeout == 0 && path != "global" {
		p.Timeout = Duration(min(iv, DefaultTimeout))
	}
	if to := time.Duration(p.Timeout); to != 0 {
		switch {
		case to > iv:
			add(path+".timeout", "%s is longer than the interval (%s): a probe must be answered or lost before the next one", to, iv)
		case to > MaxTimeout:
			add(path+".timeout", "%s is above the maximum of %s", to, MaxTimeout)
		case to < time.Millisecond:
			add(path+".timeout", "%s is too short to measure anything", to)
		}
	}
	if p.PacketSize != nil && (*p.PacketSize < MinPacketSize || *p.PacketSize > MaxPacketSize) {
		add(path+".packet_size", "%d is out of range (%d to %d payload bytes)", *p.PacketSize, MinPacketSize, MaxPacketSize)
	}
	if p.TOS != nil && p.DSCP != "" {
		add(path+".dscp", "set tos or dscp, not both")
	}
	if p.TOS != nil && (*p.TOS < 0 || *p.TOS > 255) {
		add(path+".tos", "%d is out of range (0 to 255)", *p.TOS)
	}
	if p.DSCP != "" {
		if _, err := parseDSCP(p.DSCP); err != nil {
			add(path+".dscp", "%v", err)
		}
	}
	checkFamilySource(path, p.Family, p.Source, add)
}

func checkFamilySource(path string, fam Family, src string, add adder) {
	switch fam {
	case FamilyAuto, FamilyIP4, FamilyIP6, FamilyBoth:
	default:
		add(path+".family", "%q is not one of auto, ip4, ip6, both", fam)
	}
	if src != "" && net.ParseIP(src) == nil && !validInterfaceName(src) {
		add(path+".source", "%q is neither an IP address nor an interface name", src)
	}
}

// checkLiteralFamily refuses a family a literal address cannot have.
func checkLiteralFamily(path, host string, fam Family, add adder) {
	if ip := net.ParseIP(host); ip != nil {
		is4 := ip.To4() != nil
		if (fam == FamilyIP6 && is4) || (fam == FamilyIP4 && !is4) || fam == FamilyBoth {
			add(path+".family", "%q cannot be used with the literal address %s", fam, host)
		}
	}
}

func checkLabels(path string, labels map[string]string, add adder) {
	for k := range labels {
		switch {
		case !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__"):
			add(path+"."+k, "%q is not a valid Prometheus label name", k)
		case reservedLabels[k]:
			add(path+"."+k, "label %q is reserved: the exporter or Prometheus sets it", k)
		}
	}
}

var dscpNames = map[string]int{
	"BE": 0, "CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48, "CS7": 56,
	"AF11": 10, "AF12": 12, "AF13": 14, "AF21": 18, "AF22": 20, "AF23": 22,
	"AF31": 26, "AF32": 28, "AF33": 30, "AF41": 34, "AF42": 36, "AF43": 38,
	"EF": 46, "VA": 44, "LE": 1,
}

func parseDSCP(s string) (int, error) {
	if v, ok := dscpNames[strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 63 {
		return 0, fmt.Errorf("%q is not a DSCP value (0 to 63, or a name such as EF, AF41, CS1)", s)
	}
	return v, nil
}

func validHost(h string) bool {
	if h == GatewayKeyword || net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

func validInterfaceName(s string) bool {
	if len(s) == 0 || len(s) > 15 {
		return false
	}
	return !strings.ContainsAny(s, "/ \t\n:")
}

func intp(v int) *int { return &v }
