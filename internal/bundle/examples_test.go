package bundle

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/config"
)

// TestMeshExample: docs/examples/mesh.yml (the config package's example
// test loads every example) really sets up a mesh: a responder and peers
// that inherit the section's defaults.
func TestMeshExample(t *testing.T) {
	c, err := config.LoadFile(filepath.Join(root, "docs/examples/mesh.yml"))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Mesh
	if !m.Responder.Enabled() || len(m.Peers) < 2 {
		t.Fatalf("mesh example: responder %+v, %d peers; want a responder and at least 2 peers", m.Responder, len(m.Peers))
	}
	for _, p := range m.Peers {
		if !p.Has(config.MeshUDP) || p.IntervalD() != time.Duration(m.Interval) {
			t.Errorf("peer %s: protocols %v, interval %v: want udp (one-way delay) and the section's interval", p.Name, p.Protocols, p.IntervalD())
		}
	}
}
