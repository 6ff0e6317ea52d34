package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMeshDefaultsAndInheritance(t *testing.T) {
	c, err := Parse([]byte(`
global: {interval: 2s}
mesh:
  responder: {udp_port: 9918, tcp_port: 9919}
  interval: 100ms
  protocols: [udp, tcp]
  peers:
    - {address: "198.18.10.2:9918", name: hub, labels: {site: hub}}
    - {address: "[2001:2::1]:9918", interval: 10ms, timeout: 200ms, protocols: [tcp_connect], tcp_port: 9919}
`), "m.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Mesh
	if m.Responder.RateLimit != DefaultMeshRateLimit || m.Responder.RateBurst != 50 || m.Responder.MaxConnections != DefaultMeshMaxConnections {
		t.Errorf("responder defaults: %+v", m.Responder)
	}
	p0, p1 := m.Peers[0], m.Peers[1]
	if p0.IntervalD() != 100*time.Millisecond || p0.TimeoutD() != time.Second || !p0.Has("tcp") || p0.Has("tcp_connect") || p0.PacketSize != MeshHeaderLen || p0.ReconnectAfter != 3 {
		t.Errorf("peer 0: %+v", p0)
	}
	if p1.Name != "[2001:2::1]:9918" || p1.TimeoutD() != 200*time.Millisecond || p1.Has("udp") || p1.TCPPort != 9919 {
		t.Errorf("peer 1: %+v", p1)
	}
}

func TestMeshErrorsNameLineAndField(t *testing.T) {
	_, err := Parse([]byte(`mesh:
  responder: {udp_port: 70000, listen: "not-an-ip"}
  peers:
    - {address: "198.18.10.2"}
    - {address: "a.example:9918", protocols: [udp, icmp]}
    - {address: "b.example:9918", interval: 5ms}
    - {address: "c.example:9918", labels: {peer: x}}
    - {address: "c.example:9918", packet_size: 20}
`), "m.yml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"m.yml:2: mesh.responder.udp_port: 70000 is out of range",
		"m.yml:2: mesh.responder.listen:",
		"m.yml:4: mesh.peers[0].address: \"198.18.10.2\" is not host:port",
		"m.yml:5: mesh.peers[1].protocols[1]: \"icmp\" is not one of udp, tcp, tcp_connect",
		"m.yml:6: mesh.peers[2].interval: 5ms is below the minimum",
		"m.yml:7: mesh.peers[3].labels.peer: label \"peer\" is reserved",
		"m.yml:8: mesh.peers[4].name: \"c.example:9918\" is already the name",
		"m.yml:8: mesh.peers[4].packet_size: 20 is out of range",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestMeshPeersFile(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte("mesh:\n  interval: 50ms\n  peers:\n    - {address: \"198.18.10.2:9918\", name: hub}\n"), "m.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Mesh
	m.PeersFile = filepath.Join(dir, "peers.json")
	os.WriteFile(m.PeersFile, []byte(`[{"address": "198.18.11.2:9918", "name": "edge1", "labels": {"site": "x"}},
 {"address": "198.18.12.2:9918", "protocols": ["tcp"]}]`), 0o644)
	peers, err := m.LoadPeersFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[0].IntervalD() != 50*time.Millisecond || peers[1].Name != "198.18.12.2:9918" || !peers[1].Has("tcp") {
		t.Errorf("peers: %+v", peers)
	}
	for content, want := range map[string]string{
		"- {address: 198.18.11.2:9918}\n- {address: nonsense}\n":    "peers.json:2: peers[1].address:",
		"- {address: 198.18.11.2:9918, name: hub}\n":                `peers.json:1: peers[0].name: "hub" is already the name of mesh.peers[0]`,
		"- {address: 198.18.11.2:9918}\n- {adress: 198.18.1.1:1}\n": `peers.json:2: peers[1].adress: unknown field "adress"`,
		"[{\"address\": \"198.18.11.2:9918\"\n":                     "peers.json:",
		"address: 198.18.11.2:9918\n":                               "peers.json:1:",
	} {
		os.WriteFile(m.PeersFile, []byte(content), 0o644)
		if _, err := m.LoadPeersFile(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", content, err, want)
		}
	}
	os.Remove(m.PeersFile)
	if _, err := m.LoadPeersFile(); err == nil || !strings.Contains(err.Error(), "peers.json") {
		t.Errorf("missing file: %v", err)
	}
}
