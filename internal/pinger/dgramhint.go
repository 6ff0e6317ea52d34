package pinger

import (
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// dgramError explains a refused ICMP datagram socket. Linux opens one only
// for a process whose group (effective or supplementary) is in
// net.ipv4.ping_group_range — one setting per network namespace, for IPv6
// too, and "1 0" (no group at all) unless a distribution widens it — so
// "permission denied" alone sends people hunting for capabilities.
func dgramError(err error) error {
	if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("ICMP datagram socket: %w", err)
	}
	now := "unreadable"
	if fs, ferr := procfs.NewDefaultFS(); ferr == nil {
		// Read on this thread: /proc/sys/net shows the calling thread's namespace.
		if r, rerr := fs.SysctlInts("net.ipv4.ping_group_range"); rerr == nil && len(r) == 2 {
			now = fmt.Sprintf("%q", fmt.Sprintf("%d %d", r[0], r[1]))
			if r[0] > r[1] {
				now += ", which allows no group"
			}
		} else if rerr != nil {
			now = fmt.Sprintf("unreadable (%v)", rerr)
		}
	}
	gid := os.Getegid()
	groups := ""
	if g, gerr := os.Getgroups(); gerr == nil && len(g) > 0 {
		groups = fmt.Sprintf(", supplementary groups %v", g)
	}
	return fmt.Errorf("ICMP datagram socket: %w: the kernel opens one only for a group in net.ipv4.ping_group_range (/proc/sys/net/ipv4/ping_group_range), "+
		"which is %s; this process runs as group %d%s. Allow it with `sysctl -w net.ipv4.ping_group_range=\"%d %d\"` "+
		"(make it last in /etc/sysctl.d/; the setting is per network namespace), or use a raw socket (CAP_NET_RAW, --ping.socket=raw)",
		err, now, gid, groups, gid, gid)
}
