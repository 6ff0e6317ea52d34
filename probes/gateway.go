package probes

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/pinger"
)

// The gateway keyword's address, read from the routing tables under
// --path.procfs each time the target is resolved.

// gateway reads the default route's gateway from --path.procfs.
func (c *pingCollector) gateway(f config.Family) (netip.Addr, error) {
	for _, want := range familyPreference(f) {
		if want == pinger.IPv4 {
			fs, err := procfs.NewFS(c.deps.ProcPath)
			if err != nil {
				continue
			}
			routes, err := fs.NetRoute()
			if err != nil {
				continue
			}
			for _, r := range routes {
				if r.Destination == 0 && r.Mask == 0 && r.Gateway != 0 {
					g := r.Gateway // little-endian in /proc/net/route
					return netip.AddrFrom4([4]byte{byte(g), byte(g >> 8), byte(g >> 16), byte(g >> 24)}), nil
				}
			}
			continue
		}
		if a, err := ipv6DefaultGateway(filepath.Join(c.deps.ProcPath, "net", "ipv6_route")); err == nil {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no default %s gateway in the routing table", f)
}

// ipv6DefaultGateway reads /proc/net/ipv6_route, which procfs does not parse:
// the default route is ::/0 with a next hop, lowest metric first. (A seq_file
// with no poll method: os.ReadFile reads it with blocking reads.)
func ipv6DefaultGateway(path string) (netip.Addr, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return netip.Addr{}, err
	}
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[1] != "00" || strings.Trim(f[0], "0") != "" {
			continue
		}
		hop, err := hex.DecodeString(f[4])
		if err != nil || len(hop) != 16 {
			continue
		}
		a := netip.AddrFrom16([16]byte(hop))
		if a.IsUnspecified() {
			continue
		}
		metric, err := strconv.ParseUint(f[5], 16, 64)
		if err != nil {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = a, metric
		}
	}
	if !best.IsValid() {
		return best, fmt.Errorf("no IPv6 default route with a next hop")
	}
	return best, nil
}
