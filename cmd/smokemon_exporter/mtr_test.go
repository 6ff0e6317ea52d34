package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/lab"
)

// The real binary, run in the lab's client namespace, traces both families to
// the destination and serves output that promtool finds clean.
func TestMTRInLab(t *testing.T) {
	lab.Require(t)
	tp := lab.Topology(t)
	d4, d6 := tp.Addr(tp.Dst[0], false), tp.Addr(tp.Dst[0], true)
	cfg := writeFile(t, t.TempDir(), "c.yml", fmt.Sprintf(`
global: {labels: {site: lab}}
mtr:
  interval: 200ms
  probes: 2
  timeout: 50ms
  max_hops: 8
  targets:
    - {host: %s, name: d4}
    - {host: %s, name: d6}
`, d4, d6))
	e := labExporter(t, tp.Client, nil, "--config.file="+cfg, "--collector.disable-defaults", "--collector.mtr")
	time.Sleep(1500 * time.Millisecond)
	body := e.scrape(t)
	t.Logf("IPv4 series:\n%s", grep(body, `family="ip4"`))
	for target, v6 := range map[string]bool{"d4": false, "d6": true} {
		fam := "ip4"
		if v6 {
			fam = "ip6"
		}
		lv := fmt.Sprintf(`family="%s",site="lab",target="%s"`, fam, target)
		if h, r := sample(body, "smokemon_mtr_hops{"+lv+"}"), sample(body, "smokemon_mtr_destination_reached{"+lv+"}"); h != 3 || r != 1 {
			t.Errorf("%s: hops %v reached %v", target, h, r)
		}
		for i, a := range tp.Path(0, v6) {
			info := fmt.Sprintf(`smokemon_mtr_hop_info{family="%s",hop="%d",ip="%s",site="lab",target="%s"}`, fam, i+1, a, target)
			if v := sample(body, info); v != 1 {
				t.Errorf("missing %s 1 in:\n%s", info, grep(body, "smokemon_mtr_hop_info"))
			}
			hl := fmt.Sprintf(`{family="%s",hop="%d",site="lab",target="%s"}`, fam, i+1, target)
			if s, r := sample(body, "smokemon_mtr_hop_sent_total"+hl), sample(body, "smokemon_mtr_hop_received_total"+hl); s < 4 || r != s {
				t.Errorf("%s hop %d: sent %v received %v", target, i+1, s, r)
			}
		}
	}
	if v := sample(body, `smokemon_scrape_collector_success{collector="mtr"}`); v != 1 {
		t.Errorf("mtr collector success = %v", v)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
