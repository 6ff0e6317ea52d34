package bundle

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite grafana/dashboards from dashboards.go")

// root is the repository root (tests run in internal/bundle).
var root = func() string { r, _ := filepath.Abs("../.."); return r }()

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package in .ci/test-packages)", tool)
		}
	}
}

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
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

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAlertConventions: every alert is named Smokemon…, has a severity,
// summary, description and a runbook section, and is tested both firing and
// silent; every recording rule is exercised by an expression test or an alert.
func TestAlertConventions(t *testing.T) {
	var alerts ruleFile
	readYAML(t, filepath.Join(root, "prometheus/rules/smokemon-alerts.yml"), &alerts)
	var recording ruleFile
	readYAML(t, filepath.Join(root, "prometheus/rules/smokemon-recording.yml"), &recording)
	runbook, err := os.ReadFile(filepath.Join(root, "docs/runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(runbook), -1) {
		sections[strings.ToLower(m[1])] = true
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	var exprs []string
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
		}
	}
	for s := range sections {
		t.Errorf("docs/runbooks.md section %s belongs to no alert", s)
	}
	// Every recording rule is checked by an expression test, or feeds one
	// that is, or an alert that is: a wrong one fails some test.
	used := strings.Join(exprs, "\n") + allAlertExprs.String()
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
	t.Logf("%d alerts, each tested firing and silent", n)
}

// TestAlertmanager: the config loads in the installed Alertmanager (Debian:
// 0.25), and each route picks the receiver it should.
func TestAlertmanager(t *testing.T) {
	need(t, "amtool")
	dir := filepath.Join(root, "alertmanager")
	out := run(t, dir, "amtool", "check-config", "alertmanager.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatal(out)
	}
	cases := []struct {
		receiver string
		labels   []string
	}{
		{"critical", []string{"alertname=SmokemonExporterDown", "node=pi", "severity=critical"}},
		{"critical", []string{"alertname=SmokemonISPOutage", "node=pi", "severity=critical", "kind=isp-outage"}},
		{"warning", []string{"alertname=SmokemonPacketLoss", "node=pi", "target=dst", "severity=warning"}},
		{"info", []string{"alertname=SmokemonPowerSpike", "node=jetson", "rail=VDD_IN", "severity=info"}},
		// An alert without a known severity still reaches someone.
		{"warning", []string{"alertname=Other", "node=pi"}},
		{"warning", []string{"alertname=Other", "severity=page"}},
	}
	for _, c := range cases {
		args := append([]string{"amtool", "config", "routes", "test", "--config.file=alertmanager.yml", "--verify.receivers=" + c.receiver}, c.labels...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%v: want receiver %s: %v\n%s", c.labels, c.receiver, err, got)
		}
	}
	// And a wrong expectation fails: the check can fail.
	cmd := exec.Command("amtool", "config", "routes", "test", "--config.file=alertmanager.yml", "--verify.receivers=info", "severity=critical")
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Error("amtool routes test accepted a wrong receiver")
	}
	// Every route of the tree is covered by a case.
	tree := run(t, dir, "amtool", "config", "routes", "--config.file=alertmanager.yml")
	for _, sev := range regexp.MustCompile(`severity="(\w+)"`).FindAllStringSubmatch(tree, -1) {
		covered := false
		for _, c := range cases {
			covered = covered || (c.receiver == sev[1] && strings.Contains(strings.Join(c.labels, " "), "severity="+sev[1]))
		}
		if !covered {
			t.Errorf("route severity=%s has no test case", sev[1])
		}
	}
	// Secrets only through files.
	b, _ := os.ReadFile(filepath.Join(dir, "alertmanager.yml"))
	for _, k := range regexp.MustCompile(`(?m)^\s+(api_url|webhook_url|auth_password|token|user_key|credentials|password):`).FindAllString(string(b), -1) {
		t.Errorf("alertmanager.yml holds a secret inline: %s", strings.TrimSpace(k))
	}
}

func TestCompose(t *testing.T) {
	need(t, "docker-compose")
	cmd := exec.Command("docker-compose", "-f", "docker-compose.yml", "config")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GF_ADMIN_PASSWORD=test-only")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var c struct {
		Services map[string]struct {
			NetworkMode string         `yaml:"network_mode"`
			CapAdd      []string       `yaml:"cap_add"`
			Volumes     []any          `yaml:"volumes"`
			Environment map[string]any `yaml:"environment"`
			Command     []string       `yaml:"command"`
			User        string         `yaml:"user"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"prometheus", "alertmanager", "grafana", "exporter", "analyzer"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("no %s service", s)
		}
	}
	ex := c.Services["exporter"]
	if ex.NetworkMode != "host" || !contains(ex.CapAdd, "NET_RAW") {
		t.Errorf("exporter: network_mode %q, cap_add %v; want host and NET_RAW", ex.NetworkMode, ex.CapAdd)
	}
	vols := strings.ToLower(strings.Join(anyStrings(ex.Volumes), " "))
	for _, m := range []string{"/proc", "/sys"} {
		if !strings.Contains(vols, m) || !strings.Contains(vols, "read_only") && !strings.Contains(vols, ":ro") {
			t.Errorf("exporter: %s not mounted read-only: %s", m, vols)
		}
	}
	if cmdline := strings.Join(ex.Command, " "); !strings.Contains(cmdline, "--path.procfs") || !strings.Contains(cmdline, "--path.sysfs") {
		t.Errorf("exporter command %q lacks --path.procfs/--path.sysfs", cmdline)
	}
	if pw := c.Services["grafana"].Environment["GF_SECURITY_ADMIN_PASSWORD"]; pw != "test-only" {
		t.Errorf("grafana admin password %v, want it from $GF_ADMIN_PASSWORD", pw)
	}
	// Without the password the config is refused, not defaulted.
	cmd = exec.Command("docker-compose", "-f", "docker-compose.yml", "config")
	cmd.Dir = root
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GF_ADMIN_PASSWORD=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("docker-compose config without GF_ADMIN_PASSWORD succeeded:\n%.300s", out)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func anyStrings(v []any) []string {
	var out []string
	for _, x := range v {
		b, _ := json.Marshal(x)
		out = append(out, string(b))
	}
	return out
}

func TestDashboardsUpToDate(t *testing.T) {
	dir := filepath.Join(root, "grafana/dashboards")
	want := Dashboards()
	for name, d := range want {
		b, err := Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(have, b) {
			t.Errorf("%s differs from dashboards.go (%v): go test ./internal/bundle -run TestDashboardsUpToDate -update", name, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s is not generated by dashboards.go", f)
		}
	}
}

// dashboard is what the checks read of a stored dashboard.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Datasource map[string]any `json:"datasource"`
			Query      struct {
				Query string `json:"query"`
			} `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string         `json:"name"`
			Datasource map[string]any `json:"datasource"`
			Expr       string         `json:"expr"`
			BuiltIn    int            `json:"builtIn"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  map[string]any `json:"datasource"`
	Interval    string         `json:"interval"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Instant    bool           `json:"instant"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "grafana/dashboards/*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: not valid JSON: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// builtins are Grafana's own variables the queries may use.
var builtins = map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}

var varRef = regexp.MustCompile(`\$(\w+)`)

func TestDashboardsStatic(t *testing.T) {
	var provisioned struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(root, "grafana/provisioning/datasources/smokemon.yml"), &provisioned)
	if len(provisioned.Datasources) != 1 || provisioned.Datasources[0].UID != DatasourceUID || provisioned.Datasources[0].Type != "prometheus" {
		t.Fatalf("provisioned datasources %+v, want one prometheus with uid %s", provisioned.Datasources, DatasourceUID)
	}
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(root, "grafana/provisioning/dashboards/smokemon.yml"), &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" || providers.Providers[0].Options.Path == "" {
		t.Fatalf("dashboard providers %+v, want one file provider with a path", providers.Providers)
	}
	uids := map[string]bool{}
	for name, d := range loadDashboards(t) {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("%s: uid %q empty or used twice", name, d.UID)
		}
		uids[d.UID] = true
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			if v.Type == "query" && (v.Datasource["uid"] != DatasourceUID || v.Query.Query == "") {
				t.Errorf("%s: variable %s: datasource %v, query %q", name, v.Name, v.Datasource, v.Query.Query)
			}
		}
		checkVars := func(where, expr string) {
			for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
				if !vars[m[1]] && !builtins[m[1]] {
					t.Errorf("%s: %s: $%s is no variable of the dashboard", name, where, m[1])
				}
			}
		}
		for _, v := range d.Templating.List {
			checkVars("variable "+v.Name, v.Query.Query)
		}
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 0 {
				if a.Datasource["uid"] != DatasourceUID {
					t.Errorf("%s: annotation %s not on the provisioned datasource", name, a.Name)
				}
				checkVars("annotation "+a.Name, a.Expr)
			}
		}
		ids := map[int]bool{}
		for _, p := range flatten(d.Panels) {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", name, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			where := p.Title
			if p.Datasource["uid"] != DatasourceUID {
				t.Errorf("%s: %s: datasource %v", name, where, p.Datasource)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: %s: no unit", name, where)
			}
			if len(p.Description) < 20 {
				t.Errorf("%s: %s: no description", name, where)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: %s: no query", name, where)
			}
			for _, q := range p.Targets {
				if q.Datasource["uid"] != DatasourceUID {
					t.Errorf("%s: %s %s: datasource %v", name, where, q.RefID, q.Datasource)
				}
				checkVars(where, q.Expr)
			}
		}
	}
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
