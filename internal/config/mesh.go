package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MeshConfig is the mesh section: the UDP/TCP responder and node-to-node
// probes. Off unless configured: no responder without a port, no probes
// without peers.
//
// The section's interval, timeout, protocols, packet_size and reconnect_after
// are the defaults of its peers, static or from peers_file.
type MeshConfig struct {
	Responder MeshResponder `yaml:"responder"`

	Interval       Duration `yaml:"interval"`
	Timeout        Duration `yaml:"timeout"`
	Protocols      []string `yaml:"protocols"`
	PacketSize     int      `yaml:"packet_size"`
	ReconnectAfter int      `yaml:"reconnect_after"`
	// MaxClockUncertainty, when set, also flags a peer's clock untrustworthy
	// when the offset can only be pinned down to within more than this.
	MaxClockUncertainty Duration `yaml:"max_clock_uncertainty"`

	Peers []MeshPeer `yaml:"peers"`
	// PeersFile is a YAML or JSON list of peers (the same fields as peers:),
	// typically written by a fleet tool; it is re-read when it changes.
	PeersFile string `yaml:"peers_file"`
}

// MeshResponder is the responder that answers other nodes' mesh probes.
type MeshResponder struct {
	Listen  string `yaml:"listen"`   // address to bind; empty = all
	UDPPort int    `yaml:"udp_port"` // 0 = no UDP responder
	TCPPort int    `yaml:"tcp_port"` // 0 = no TCP responder
	// RateLimit is requests per second per source address (both protocols
	// together); Burst is the bucket size. 0 falls back to the defaults.
	RateLimit      float64 `yaml:"rate_limit"`
	RateBurst      int     `yaml:"rate_burst"`
	MaxConnections int     `yaml:"max_connections"` // concurrent TCP connections
}

// Enabled reports whether any responder listener is configured.
func (r *MeshResponder) Enabled() bool { return r.UDPPort != 0 || r.TCPPort != 0 }

// MeshPeer is one node to probe.
type MeshPeer struct {
	Address        string            `yaml:"address" json:"address"`   // host:port of the peer's responder
	TCPPort        int               `yaml:"tcp_port" json:"tcp_port"` // when the TCP responder listens on another port
	Name           string            `yaml:"name" json:"name"`
	Labels         map[string]string `yaml:"labels" json:"labels"`
	Protocols      []string          `yaml:"protocols" json:"protocols"`
	Interval       Duration          `yaml:"interval" json:"interval"`
	Timeout        Duration          `yaml:"timeout" json:"timeout"`
	PacketSize     int               `yaml:"packet_size" json:"packet_size"`
	ReconnectAfter int               `yaml:"reconnect_after" json:"reconnect_after"`
}

// Resolved settings, valid after validation.
func (p *MeshPeer) IntervalD() time.Duration { return time.Duration(p.Interval) }
func (p *MeshPeer) TimeoutD() time.Duration  { return time.Duration(p.Timeout) }

// Has reports whether the peer is probed with protocol proto.
func (p *MeshPeer) Has(proto string) bool {
	for _, v := range p.Protocols {
		if v == proto {
			return true
		}
	}
	return false
}

// Mesh protocols, defaults and limits.
const (
	MeshUDP        = "udp"
	MeshTCP        = "tcp"
	MeshTCPConnect = "tcp_connect"

	DefaultMeshPort           = 9918
	DefaultMeshRateLimit      = 200 // per source: 2 protocols at 10 ms is 200/s
	DefaultMeshMaxConnections = 64
	DefaultMeshReconnectAfter = 3
	MeshHeaderLen             = 64   // the probe's fixed header (internal/mesh)
	MeshMaxPacketSize         = 1472 // a 1500-byte MTU without fragmenting
)

var meshLabels = ownLabels{"mesh", []string{"peer", "protocol", "direction", "address", "ip"}}

var meshProtocols = []string{MeshUDP, MeshTCP, MeshTCPConnect}

// DefaultMesh holds the section's defaults (see fillDefaults); the interval
// is global's, the responder's burst a quarter of its rate (at least 10).
var DefaultMesh = MeshConfig{
	Responder:      MeshResponder{RateLimit: DefaultMeshRateLimit, MaxConnections: DefaultMeshMaxConnections},
	Protocols:      []string{MeshUDP},
	PacketSize:     MeshHeaderLen,
	ReconnectAfter: DefaultMeshReconnectAfter,
}

func (c *MeshConfig) validate(g *Global, add adder) {
	r := &c.Responder
	for _, f := range []struct {
		name string
		v    int
	}{{"udp_port", r.UDPPort}, {"tcp_port", r.TCPPort}} {
		if f.v < 0 || f.v > 65535 {
			add("mesh.responder."+f.name, "%d is out of range (1 to 65535, or 0 for no responder)", f.v)
		}
	}
	if r.Listen != "" && net.ParseIP(r.Listen) == nil {
		add("mesh.responder.listen", "%q is not an IP address (leave it empty to listen on all addresses)", r.Listen)
	}
	if r.RateLimit < 0 {
		add("mesh.responder.rate_limit", "%v must not be negative", r.RateLimit)
	}
	if r.RateBurst < 0 {
		add("mesh.responder.rate_burst", "%d must not be negative", r.RateBurst)
	}
	if r.MaxConnections < 0 {
		add("mesh.responder.max_connections", "%d must not be negative", r.MaxConnections)
	}
	if c.MaxClockUncertainty < 0 {
		add("mesh.max_clock_uncertainty", "must not be negative")
	}
	burstSet := r.RateBurst != 0
	fillDefaults(c, &DefaultMesh)
	if !burstSet {
		r.RateBurst = max(10, int(r.RateLimit/4))
	}
	if c.Interval == 0 {
		c.Interval = g.Interval
	}
	// Section defaults, checked once at their own lines.
	sec := MeshPeer{Interval: c.Interval, Timeout: c.Timeout, Protocols: c.Protocols, PacketSize: c.PacketSize, ReconnectAfter: c.ReconnectAfter}
	sec.check("mesh", add)
	checkList("mesh.protocols", c.Protocols, meshProtocols, add)
	if len(c.Peers) > 0 || c.PeersFile != "" {
		checkOwnLabels("global.labels", g.Labels, meshLabels, add)
	}
	names := map[string]int{}
	for i := range c.Peers {
		c.fillPeer("mesh.peers", i, &c.Peers[i], names, add)
	}
}

// fillPeer checks the i-th peer of list and fills in what it inherits from
// the section.
func (c *MeshConfig) fillPeer(list string, i int, peer *MeshPeer, names map[string]int, add adder) {
	p := fmt.Sprintf("%s[%d]", list, i)
	checkHostPort(p+".address", peer.Address, "every peer needs an address (host:port of its responder)", fmt.Sprintf("[2001:db8::1]:%d", DefaultMeshPort), add)
	if peer.TCPPort < 0 || peer.TCPPort > 65535 {
		add(p+".tcp_port", "%d is out of range (1 to 65535)", peer.TCPPort)
	}
	if peer.Name == "" {
		peer.Name = peer.Address
	}
	uniqueName(list, i, peer.Name, names, add)
	checkLabels(p+".labels", peer.Labels, meshLabels, add)
	if len(peer.Protocols) > 0 {
		checkList(p+".protocols", peer.Protocols, meshProtocols, add)
	}
	fillDefaults(peer, &MeshPeer{Interval: c.Interval, Timeout: c.Timeout, Protocols: c.Protocols, PacketSize: c.PacketSize, ReconnectAfter: c.ReconnectAfter})
	peer.check(p, add)
}

// check: unlike ping, a mesh timeout may exceed the interval (a 10 ms
// cadence to a peer 80 ms away); probes overlap and are told apart by
// sequence number. An unset timeout is the interval, at least 1s, at most 5s.
func (p *MeshPeer) check(path string, add adder) {
	if p.Timeout == 0 && path != "mesh" {
		p.Timeout = Duration(min(max(time.Duration(p.Interval), time.Second), DefaultTimeout))
	}
	checkSchedule(path, p.Interval, p.Timeout, 0, "", add)
	checkRange(path+".packet_size", p.PacketSize, MeshHeaderLen, MeshMaxPacketSize, "bytes: the probe's header to a 1500-byte MTU", add)
	if p.ReconnectAfter < 1 {
		add(path+".reconnect_after", "%d must be at least 1 (consecutive TCP losses before reconnecting)", p.ReconnectAfter)
	}
}

// LoadPeersFile reads the section's peers_file: a YAML or JSON list of peers
// with the fields of mesh.peers. The peers inherit the section's defaults and
// must not reuse a static peer's name. Errors name the file, line and field;
// on error nothing is returned, so the caller keeps the peers it had.
func (c *MeshConfig) LoadPeersFile() ([]MeshPeer, error) {
	data, err := readLimited(c.PeersFile, "peers file")
	if err != nil {
		return nil, err
	}
	return c.ParsePeers(data, c.PeersFile)
}

// ParsePeers decodes and checks a peers list; name is used in messages.
func (c *MeshConfig) ParsePeers(data []byte, name string) ([]MeshPeer, error) {
	if err := checkSize(name, "peers file", data); err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(name, data, err)
	}
	if err := checkEntries(name, &root, "peers"); err != nil {
		return nil, err
	}
	// The index is built from a document wrapped as {peers: ...}, so paths
	// read like the config's ("peers[2].address").
	idx := &lineIndex{byPath: map[string]int{}, byLine: map[int]string{}}
	if len(root.Content) > 0 {
		idx = indexLines(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: "peers", Line: root.Content[0].Line}, root.Content[0]}})
	}
	var peers []MeshPeer
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&peers); err != nil && !errors.Is(err, io.EOF) {
		return nil, rewriteYAMLError(name, idx, err)
	}
	var errs []string
	add := func(path, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s: %s", name, idx.line(path), path, fmt.Sprintf(format, a...)))
	}
	names := map[string]int{}
	for i, p := range c.Peers {
		names[p.Name] = -1 - i
	}
	for i := range peers {
		p := fmt.Sprintf("peers[%d]", i)
		if j, ok := names[peers[i].nameOrAddress()]; ok && j < 0 {
			add(p+".name", "%q is already the name of mesh.peers[%d] in the config file", peers[i].nameOrAddress(), -1-j)
			continue
		}
		c.fillPeer("peers", i, &peers[i], names, add)
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return peers, nil
}

func (p *MeshPeer) nameOrAddress() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Address
}
