package status

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// rules reads the alerting and recording rules of the bundle: name → expr,
// with runs of white space folded to one space.
func rules(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"smokemon-alerts.yml", "smokemon-recording.yml"} {
		b, err := os.ReadFile("../../prometheus/rules/" + f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []struct{ Alert, Record, Expr string }
			}
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				out[r.Alert+r.Record] += strings.Join(strings.Fields(r.Expr), " ") + "\n"
			}
		}
	}
	return out
}

// Every threshold that names a rule must be the rule's own: its value (and
// window) written in the rule's expression as Expr has it.
func TestThresholdsMatchRules(t *testing.T) {
	rs := rules(t)
	for name, th := range All {
		if th.Rule == "" {
			t.Logf("%s: the status page's own threshold (%v), no rule draws it", name, th.Value)
			continue
		}
		expr, ok := rs[th.Rule]
		if !ok {
			t.Errorf("%s: rule %s is not in prometheus/rules", name, th.Rule)
			continue
		}
		frag := strings.Join(strings.Fields(th.Fragment()), " ")
		if !strings.Contains(expr, frag) {
			t.Errorf("%s: rule %s does not contain %q; its expression:\n%s", name, th.Rule, frag, expr)
		}
	}
}

func TestThresholdBad(t *testing.T) {
	cases := []struct {
		th   Threshold
		v    float64
		want bool
	}{
		{LossBurst, 0.05, false}, {LossBurst, 0.051, true},
		{TargetDown, 0.99, true}, {TargetDown, 0.98, false},
		{WeakWifi, -75, false}, {WeakWifi, -76, true},
		{RoamStorm, 3, false}, {RoamStorm, 4, true},
		{TripMargin, -0.5, false}, {TripMargin, 0, true},
	}
	for _, c := range cases {
		if got := c.th.Bad(c.v); got != c.want {
			t.Errorf("%s (%s) Bad(%v) = %v, want %v", c.th.Rule, c.th.Fragment(), c.v, got, c.want)
		}
	}
}
