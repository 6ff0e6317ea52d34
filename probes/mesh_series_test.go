package probes

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/internal/mesh"
)

// TestMeshStatsLabelPairs checks the pairs newMeshStats builds by hand
// against client_golang's MakeLabelPairs for every series of a peer, with
// custom labels sorting before, between and after the mesh's own names.
func TestMeshStatsLabelPairs(t *testing.T) {
	custom := []string{"aaa", "os", "site", "zone"}
	d := newMeshDescs(custom)
	s := newMeshStats(custom, "p1", []string{"a", "", "s1", "z"})
	info := s.newInfo("node1.example:4000", netip.MustParseAddr("198.18.0.7"))
	check := func(name string, got []*dto.LabelPair, desc *prometheus.Desc, v ...string) {
		t.Helper()
		want := prometheus.MakeLabelPairs(desc, append(v, s.labels...))
		if len(got) != len(want) {
			t.Fatalf("%s: %d pairs, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i].GetName() != want[i].GetName() || got[i].GetValue() != want[i].GetValue() {
				t.Errorf("%s: pair %d is %s=%q, want %s=%q", name, i, got[i].GetName(), got[i].GetValue(), want[i].GetName(), want[i].GetValue())
			}
		}
		if cap(got) != len(got) {
			t.Errorf("%s: capacity %d beyond its %d pairs: an append would overwrite the next series'", name, cap(got), len(got))
		}
	}
	check("peer_up", s.pairs.peer, d.up, "p1")
	check("peer_info", info.pairs, d.info, "p1", "node1.example:4000", "198.18.0.7")
	for p := range mesh.Proto(3) {
		check("sent "+p.String(), s.pairs.proto[p], d.sent, "p1", p.String())
		check("lost unknown "+p.String(), s.pairs.lost[p][mesh.DirUnknown], d.lost, "p1", p.String(), "unknown")
	}
	for _, dir := range []mesh.Direction{mesh.Forward, mesh.Return} {
		check("lost udp "+dir.String(), s.pairs.lost[mesh.UDP][dir], d.lost, "p1", "udp", dir.String())
		check("reordered "+dir.String(), s.pairs.dir[dir], d.reordered, "p1", dir.String())
	}
	if un := s.newInfo("node1.example:4000", netip.Addr{}); un.pairs[1].GetName() != "address" || un.pairs[2].GetName() != "ip" || un.pairs[2].GetValue() != "" {
		t.Errorf("unresolved peer_info: %v, want an empty ip", un.pairs)
	}
}
