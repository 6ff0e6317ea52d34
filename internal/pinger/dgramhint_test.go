package pinger

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/smokemon/smokemon/internal/lab"
)

// A forced datagram socket refused by ping_group_range says so, with the
// range in force, the group and the fix; the fix it names works. The range
// is per network namespace, so a lab namespace can refuse it without
// touching the machine's own setting.
func TestDgramRefusalNamesPingGroupRange(t *testing.T) {
	h := lab.New(t).Host("dgram")
	gid := os.Getegid()
	for _, fam := range []Family{IPv4, IPv6} {
		h.Sysctl("net.ipv4.ping_group_range", "1 0")
		err := h.Do(func() error {
			s, _, err := openSocket(fam, KindDgram, 1, true)
			if err == nil {
				s.close()
			}
			return err
		})
		for _, want := range []string{
			"ICMP datagram socket: permission denied",
			`net.ipv4.ping_group_range (/proc/sys/net/ipv4/ping_group_range), which is "1 0", which allows no group`,
			fmt.Sprintf("this process runs as group %d", gid),
			fmt.Sprintf(`sysctl -w net.ipv4.ping_group_range="%d %d"`, gid, gid),
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%v: err = %v\nwant it to contain %s", fam, err, want)
			}
		}
		h.Sysctl("net.ipv4.ping_group_range", fmt.Sprintf("%d %d", gid, gid))
		if err := h.Do(func() error {
			s, _, err := openSocket(fam, KindDgram, 1, true)
			if err == nil {
				s.close()
			}
			return err
		}); err != nil {
			t.Errorf("%v: with the suggested range: %v", fam, err)
		}
	}
}
