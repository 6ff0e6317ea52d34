package bundle

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/smokemon/smokemon/internal/config"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type testFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr       string `yaml:"expr"`
			ExpSamples []struct {
				Labels string `yaml:"labels"`
			} `yaml:"exp_samples"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// TestAlertConventions: every alert is named Smokemon…, has a severity,
// summary, description and a runbook section, and is tested both firing and
// silent; every recording rule is exercised by an expression test or an alert.
func TestAlertConventions(t *testing.T) {
	alerts := readAlertRules(t)
	var recording ruleFile
	readYAML(t, filepath.Join(root, "prometheus/rules/smokemon-recording.yml"), &recording)
	sections := runbookSections(t)
	fires, silent, exprs := promtoolCoverage(t)
	var allAlertExprs strings.Builder
	n := 0
	for _, g := range alerts.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule %s among the alerts", g.Name, r.Record)
				continue
			}
			n++
			allAlertExprs.WriteString(r.Expr + r.Annotations["description"] + "\n")
			checkAlertRule(t, r, sections, fires, silent)
		}
	}
	for s := range sections {
		t.Errorf("docs/runbooks.md section %s belongs to no alert", s)
	}
	checkRecordingTested(t, recording, strings.Join(exprs, "\n")+allAlertExprs.String())
	t.Logf("%d alerts, each tested firing and silent", n)
	checkProbeFamilies(t, allAlertExprs.String(), recording)
}

// readAlertRules merges the groups of every smokemon-alerts*.yml.
func readAlertRules(t *testing.T) ruleFile {
	t.Helper()
	var alerts ruleFile
	alertFiles, _ := filepath.Glob(filepath.Join(root, "prometheus/rules/smokemon-alerts*.yml"))
	if len(alertFiles) == 0 {
		t.Fatal("no alert rule files")
	}
	for _, f := range alertFiles {
		var rf ruleFile
		readYAML(t, f, &rf)
		alerts.Groups = append(alerts.Groups, rf.Groups...)
	}
	return alerts
}

// runbookSections returns the lower-cased "## " headings of docs/runbooks.md.
func runbookSections(t *testing.T) map[string]bool {
	t.Helper()
	runbook, err := os.ReadFile(filepath.Join(root, "docs/runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(runbook), -1) {
		sections[strings.ToLower(m[1])] = true
	}
	return sections
}

// promtoolCoverage reads prometheus/tests: the alerts some test expects to
// fire, those some test expects silent, and every expression tested.
func promtoolCoverage(t *testing.T) (fires, silent map[string]bool, exprs []string) {
	t.Helper()
	fires, silent = map[string]bool{}, map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(root, "prometheus/tests/*.yml"))
	for _, f := range files {
		var tf testFile
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					silent[a.Alertname] = true
				}
			}
			for _, e := range tc.PromQLExprTest {
				exprs = append(exprs, e.Expr)
				for _, s := range e.ExpSamples {
					exprs = append(exprs, s.Labels)
				}
			}
		}
	}
	return fires, silent, exprs
}

// checkAlertRule checks one alert's naming, severity, annotations, runbook
// section (which it takes out of sections), tests and windows.
func checkAlertRule(t *testing.T, r rule, sections, fires, silent map[string]bool) {
	t.Helper()
	if !strings.HasPrefix(r.Alert, "Smokemon") {
		t.Errorf("%s: alert names start with Smokemon", r.Alert)
	}
	switch sev := r.Labels["severity"]; sev {
	case "critical", "warning", "info":
	case "{{ $labels.severity }}": // carried over from the analyzer's series
		if !strings.Contains(r.Expr, "severity") {
			t.Errorf("%s: severity templated from a series that has none", r.Alert)
		}
	default:
		t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, sev)
	}
	for _, a := range []string{"summary", "description", "runbook_url"} {
		if r.Annotations[a] == "" {
			t.Errorf("%s: no %s annotation", r.Alert, a)
		}
	}
	anchor := strings.ToLower(r.Alert)
	if want := "docs/runbooks.md#" + anchor; !strings.HasSuffix(r.Annotations["runbook_url"], want) {
		t.Errorf("%s: runbook_url %q does not end in %s", r.Alert, r.Annotations["runbook_url"], want)
	}
	if !sections[anchor] {
		t.Errorf("%s: no section in docs/runbooks.md", r.Alert)
	}
	delete(sections, anchor)
	if !fires[r.Alert] {
		t.Errorf("%s: no promtool test makes it fire", r.Alert)
	}
	if !silent[r.Alert] {
		t.Errorf("%s: no promtool test checks it stays silent", r.Alert)
	}
	if strings.Contains(r.Alert, "Loss") || strings.Contains(r.Alert, "Latency") {
		if r.For == "" || !strings.Contains(r.Expr, ":ratio_") && !strings.Contains(r.Expr, "_5m") {
			t.Errorf("%s: loss and latency alerts use windowed ratios with for:", r.Alert)
		}
	}
	for _, c := range rawCounter.FindAllStringSubmatch(r.Expr, -1) {
		if !windowed.MatchString(c[1]) {
			t.Errorf("%s: counter %s used raw (a reboot resets it): wrap it in rate(), increase() or resets()", r.Alert, c[2])
		}
	}
}

// checkRecordingTested checks every recording rule is checked by an
// expression test, or feeds one that is, or an alert that is: a wrong one
// fails some test. used holds the tested expressions.
func checkRecordingTested(t *testing.T, recording ruleFile, used string) {
	t.Helper()
	records := map[string]string{}
	for _, g := range recording.Groups {
		for _, r := range g.Rules {
			records[r.Record] += r.Expr + "\n"
		}
	}
	for changed := true; changed; {
		changed = false
		for rec, expr := range records {
			if strings.Contains(used, rec) {
				used += expr
				delete(records, rec)
				changed = true
			}
		}
	}
	for _, rec := range sortedKeys(records) {
		t.Errorf("recording rule %s is tested nowhere", rec)
	}
}

// A counter in an alert is read through a window function; rawCounter
// captures what precedes each counter so windowed can check it.
var (
	rawCounter = regexp.MustCompile(`(\w*\(?)\s*\b(smokemon_[a-z0-9_]+_total)\b`)
	windowed   = regexp.MustCompile(`^(increase|rate|irate|resets)\($`)
)

// checkProbeFamilies: every probe family the exporter's config has (a
// section, or each target list of a section with several) is alerted on:
// some alert reads its metrics, directly or through a recording rule.
func checkProbeFamilies(t *testing.T, alertExprs string, recording ruleFile) {
	t.Helper()
	used := alertExprs
	for _, g := range recording.Groups {
		for _, r := range g.Rules {
			if strings.Contains(alertExprs, r.Record) {
				used += r.Expr
			}
		}
	}
	families := probeFamilies()
	if len(families) < 8 {
		t.Fatalf("probe families %v: the config's sections were not found", families)
	}
	for _, fam := range families {
		if !strings.Contains(used, "smokemon_"+fam+"_") {
			t.Errorf("probe family %s: no alert reads smokemon_%s_* metrics", fam, fam)
		}
	}
	t.Logf("probe families with an alert: %v", families)
}

// probeFamilies lists the config's probe sections (everything but global)
// by their metric prefix; a section with several target lists (lists of
// named entries: synthetic's captive_portal and doh) is one family per list.
func probeFamilies() []string {
	var out []string
	ct := reflect.TypeOf(config.Config{})
	for i := range ct.NumField() {
		f := ct.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" || name == "global" || f.Type.Kind() != reflect.Struct {
			continue
		}
		var lists []string
		for j := range f.Type.NumField() {
			sf := f.Type.Field(j)
			if sf.Type.Kind() != reflect.Slice || sf.Type.Elem().Kind() != reflect.Struct {
				continue
			}
			if _, named := sf.Type.Elem().FieldByName("Name"); named { // targets have names; bands do not
				lists = append(lists, strings.Split(sf.Tag.Get("yaml"), ",")[0])
			}
		}
		if len(lists) < 2 {
			out = append(out, name)
			continue
		}
		for _, l := range lists {
			out = append(out, name+"_"+l)
		}
	}
	return out
}
