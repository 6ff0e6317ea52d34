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
	"reflect"
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
	data, err := readLimited(path, "config file")
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse decodes and validates YAML; name is used in error messages.
func Parse(data []byte, name string) (*Config, error) {
	if err := checkSize(name, "config file", data); err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(name, data, err)
	}
	if err := checkEntries(name, &root, ""); err != nil {
		return nil, err
	}
	// The line index is for error messages, and its tree is the size of
	// the config's own: build it again only when there is an error, so a
	// good 10 000-target file is not held twice while it is decoded.
	root = yaml.Node{}
	idx := func() *lineIndex {
		var root yaml.Node
		yaml.Unmarshal(data, &root)
		return indexLines(&root)
	}
	c := &Config{Source: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file (io.EOF) is an empty config: all defaults, no targets.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, rewriteYAMLError(name, idx(), err)
	}
	if errs := c.validate(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		lines := idx()
		for i, e := range errs {
			msgs[i] = fmt.Sprintf("%s:%d: %s: %s", name, lines.line(e.path), e.path, e.msg)
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

// DefaultGlobal holds the global section's defaults (see fillDefaults).
var DefaultGlobal = Global{
	ResolveInterval: Duration(5 * time.Minute),
	ProbeDefaults:   ProbeDefaults{Interval: Duration(time.Second), PacketSize: intp(56), Family: FamilyAuto},
}

func (c *Config) validate() []fieldError {
	var errs []fieldError
	add := func(path, format string, a ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, a...)})
	}
	g := &c.Global
	fillDefaults(g, &DefaultGlobal)
	if g.TOS == nil && g.DSCP == "" {
		g.TOS = intp(0)
	}
	if time.Duration(g.ResolveInterval) < time.Second {
		add("global.resolve_interval", "must be at least 1s")
	}
	checkLabels("global.labels", g.Labels, ownLabels{}, add)
	checkProbe("global", &g.ProbeDefaults, add)
	for _, s := range c.sections() {
		s.validate(g, add)
	}
	return errs
}

// section is a top-level section of the file other than global, one file
// each in this package: it fills in its defaults and checks itself, given
// the global settings it inherits.
type section interface {
	validate(g *Global, add adder)
}

// sections are c's sections in the order Config declares them. They are
// found from Config's fields rather than listed, so a new section is one
// field here and its own file (TestEverySectionValidates holds every field
// to it).
func (c *Config) sections() []section {
	v := reflect.ValueOf(c).Elem()
	var out []section
	for i := range v.NumField() {
		if s, ok := v.Field(i).Addr().Interface().(section); ok {
			out = append(out, s)
		}
	}
	return out
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
