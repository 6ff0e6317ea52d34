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

	"github.com/smokemon/smokemon/internal/upstream"
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

// TestAlertmanager: the config loads in the installed Alertmanager (Debian:
// 0.25), and each route picks the receiver it should.
// TestAlertmanager runs on Debian's amtool (0.25, the oldest supported) and
// the current release (.ci/upstream).
func TestAlertmanager(t *testing.T) {
	for _, amtool := range upstream.All(t, "amtool", "amtool") {
		t.Run(amtool.Name, func(t *testing.T) { checkAlertmanager(t, amtool.Path) })
	}
}

func checkAlertmanager(t *testing.T, amtool string) {
	dir := filepath.Join(root, "alertmanager")
	out := run(t, dir, amtool, "check-config", "alertmanager.yml")
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
		{"critical", []string{"alertname=SmokemonFleetIncident", "node=pi", "scope=hop", "key=198.18.2.1", "severity=critical"}},
		// An alert without a known severity still reaches someone.
		{"warning", []string{"alertname=Other", "node=pi"}},
		{"warning", []string{"alertname=Other", "severity=page"}},
	}
	for _, c := range cases {
		args := append([]string{amtool, "config", "routes", "test", "--config.file=alertmanager.yml", "--verify.receivers=" + c.receiver}, c.labels...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%v: want receiver %s: %v\n%s", c.labels, c.receiver, err, got)
		}
	}
	// And a wrong expectation fails: the check can fail.
	cmd := exec.Command(amtool, "config", "routes", "test", "--config.file=alertmanager.yml", "--verify.receivers=info", "severity=critical")
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Error("amtool routes test accepted a wrong receiver")
	}
	// Every route of the tree is covered by a case.
	tree := run(t, dir, amtool, "config", "routes", "--config.file=alertmanager.yml")
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

// TestInhibitionsNameRealAlerts: an inhibit rule that names an alert no rule
// file has (a typo, a rename) silences nothing, and amtool cannot tell.
func TestInhibitionsNameRealAlerts(t *testing.T) {
	var am struct {
		Inhibit []struct {
			Source []string `yaml:"source_matchers"`
			Target []string `yaml:"target_matchers"`
		} `yaml:"inhibit_rules"`
	}
	readYAML(t, filepath.Join(root, "alertmanager", "alertmanager.yml"), &am)
	known := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(root, "prometheus", "rules", "*.yml"))
	for _, f := range files {
		var rf ruleFile
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				known[r.Alert] = r.Alert != ""
			}
		}
	}
	matcher := regexp.MustCompile(`^alertname\s*(=~|=|!=)\s*"([^"]*)"$`)
	named := 0
	for i, r := range am.Inhibit {
		for _, m := range append(append([]string{}, r.Source...), r.Target...) {
			parts := matcher.FindStringSubmatch(m)
			if parts == nil {
				continue
			}
			for _, name := range strings.Split(parts[2], "|") {
				named++
				if !known[name] {
					t.Errorf("inhibit_rules[%d]: %s names %s, which no rule file defines", i, m, name)
				}
			}
		}
	}
	if named == 0 {
		t.Fatal("no inhibit rule names an alert: the check read nothing")
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
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Templating struct {
		// List holds the query variables (what the query test resolves);
		// loadDashboards moves the datasource pickers to Datasources, since
		// the tests point every query at their own Prometheus.
		List        []variable `json:"list"`
		Datasources []variable `json:"-"`
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

type variable struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Datasource map[string]any `json:"datasource"`
	Query      varQuery       `json:"query"`
	Current    map[string]any `json:"current"`
}

// varQuery is a query variable's {"query": …} or a datasource variable's
// plugin type, a plain string.
type varQuery struct{ Query string }

func (q *varQuery) UnmarshalJSON(b []byte) error {
	if json.Unmarshal(b, &q.Query) == nil {
		return nil
	}
	var o struct {
		Query string `json:"query"`
	}
	err := json.Unmarshal(b, &o)
	q.Query = o.Query
	return err
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
			Unit       string `json:"unit"`
			Thresholds struct {
				Mode  string `json:"mode"`
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
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
		vars := d.Templating.List[:0]
		for _, v := range d.Templating.List {
			if v.Type == "datasource" {
				d.Templating.Datasources = append(d.Templating.Datasources, v)
			} else {
				vars = append(vars, v)
			}
		}
		d.Templating.List = vars
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
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(root, "grafana/provisioning/datasources/smokemon.yml"), &provisioned)
	// The dashboards' datasource variable starts on Grafana's default.
	if len(provisioned.Datasources) != 1 || provisioned.Datasources[0].UID != DatasourceUID || provisioned.Datasources[0].Type != "prometheus" || !provisioned.Datasources[0].IsDefault {
		t.Fatalf("provisioned datasources %+v, want one default prometheus with uid %s", provisioned.Datasources, DatasourceUID)
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
	judged := 0
	for name, d := range loadDashboards(t) {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("%s: uid %q empty or used twice", name, d.UID)
		}
		uids[d.UID] = true
		checkDatasourceVar(t, name, d)
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			if v.Type == "query" && (v.Datasource["uid"] != DatasourceRef || v.Query.Query == "") {
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
				if a.Datasource["uid"] != DatasourceRef {
					t.Errorf("%s: annotation %s not on the datasource variable: %v", name, a.Name, a.Datasource)
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
			if p.Datasource["uid"] != DatasourceRef {
				t.Errorf("%s: %s: datasource %v", name, where, p.Datasource)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: %s: no unit", name, where)
			}
			if len(p.Description) < 20 {
				t.Errorf("%s: %s: no description", name, where)
			}
			switch p.Type {
			case "stat", "gauge", "bargauge":
				judged++
				checkThresholds(t, name+": "+where, p)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: %s: no query", name, where)
			}
			for _, q := range p.Targets {
				if q.Datasource["uid"] != DatasourceRef {
					t.Errorf("%s: %s %s: datasource %v", name, where, q.RefID, q.Datasource)
				}
				checkVars(where, q.Expr)
			}
		}
	}
	t.Logf("%d stat, gauge and bargauge panels, each with thresholds", judged)
}

// checkDatasourceVar: one `datasource` variable of Prometheus type that the
// panels name, and an import input for grafana.com's flow.
func checkDatasourceVar(t *testing.T, name string, d dashboard) {
	t.Helper()
	dv := d.Templating.Datasources
	if len(dv) != 1 || "${"+dv[0].Name+"}" != DatasourceRef || dv[0].Query.Query != "prometheus" || dv[0].Current["value"] != "default" {
		t.Errorf("%s: datasource variables %+v, want one named datasource of type prometheus, on Grafana's default", name, dv)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("%s: __inputs %+v, want one prometheus datasource", name, d.Inputs)
	}
}

// checkThresholds: a panel that colours its value says what is good and
// what is bad: a base colour and at least one bound, rising, two colours.
func checkThresholds(t *testing.T, where string, p panel) {
	t.Helper()
	th := p.FieldConfig.Defaults.Thresholds
	if th.Mode != "absolute" || len(th.Steps) < 2 || th.Steps[0].Value != nil {
		t.Errorf("%s: thresholds %+v, want absolute steps from a null base with at least one bound", where, th)
		return
	}
	colours := map[string]bool{th.Steps[0].Color: true}
	for i := 1; i < len(th.Steps); i++ {
		v := th.Steps[i].Value
		if v == nil || i > 1 && *v <= *th.Steps[i-1].Value {
			t.Errorf("%s: threshold %d (%v) does not rise", where, i, v)
		}
		colours[th.Steps[i].Color] = true
	}
	if len(colours) < 2 {
		t.Errorf("%s: thresholds of one colour say nothing", where)
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
