package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "rewrite docs/metrics.md from the real output")

const docPath = "../../docs/metrics.md"

const docHeader = `# smokemon_exporter metrics

Generated from the exporter's real output — a live scrape with every collector and probe
configured, plus the hardware fixtures under collector/testdata/fixtures — by
` + "`go test ./cmd/smokemon_exporter -run TestMetricsDoc -update`" + `. The same test fails when this
page and the output disagree, so it cannot drift. The standard ` + "`go_*` and `process_*`" + ` metrics of
client_golang are left out.

Besides the labels listed, every ping (and probe) series carries the custom labels of the config
(` + "`global.labels`, per-target `labels`" + `).
`

// observedFamilies gathers every metric family the exporter can produce here:
// the live binary with the doc config, and the fixture goldens for hardware
// this machine does not have.
func observedFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	out := map[string]*dto.MetricFamily{}
	merge := func(src string, text string) {
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for name, mf := range mfs {
			if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
				continue
			}
			if have, ok := out[name]; ok {
				have.Metric = append(have.Metric, mf.Metric...)
				continue
			}
			out[name] = mf
		}
	}
	// Host collectors come from the fixtures (deterministic on any machine);
	// the live scrape adds the probes and the exporter's own metrics.
	e := start(t, append(docConfigArgs(t), "--collector.disable-defaults", "--collector.ping")...)
	time.Sleep(2 * time.Second)
	merge("live scrape", e.scrape(t))
	goldens, _ := filepath.Glob("../../collector/testdata/fixtures/*.golden")
	if len(goldens) == 0 {
		t.Fatal("no fixture goldens found")
	}
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		merge(g, string(b))
	}
	return out
}

// docConfigArgs configures a target of every kind that can run on loopback.
func docConfigArgs(t *testing.T) []string {
	cfg := writeFile(t, t.TempDir(), "doc.yml", `
global: {interval: 200ms}
ping:
  targets:
    - {host: 127.0.0.1, name: v4}
    - {host: "::1", name: v6}
`)
	return []string{"--config.file=" + cfg}
}

func renderDoc(mfs map[string]*dto.MetricFamily) string {
	names := make([]string, 0, len(mfs))
	for n := range mfs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(docHeader)
	section := ""
	for _, n := range names {
		mf := mfs[n]
		sub := strings.SplitN(strings.TrimPrefix(n, "smokemon_"), "_", 2)[0]
		if sub != section {
			section = sub
			fmt.Fprintf(&b, "\n## %s\n\n| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n", sub)
		}
		labels := map[string]bool{}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() != "le" && l.GetName() != "quantile" {
					labels[l.GetName()] = true
				}
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, "`"+l+"`")
		}
		sort.Strings(ls)
		help := strings.ReplaceAll(mf.GetHelp(), "|", `\|`)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", n, strings.ToLower(mf.GetType().String()), strings.Join(ls, ", "), help)
	}
	return b.String()
}

func TestMetricsDoc(t *testing.T) {
	mfs := observedFamilies(t)
	got := renderDoc(mfs)

	// Whatever this machine has must be documented too.
	live := start(t, docConfigArgs(t)...)
	time.Sleep(time.Second)
	p := expfmt.NewTextParser(model.UTF8Validation)
	liveMFs, err := p.TextToMetricFamilies(strings.NewReader(live.scrape(t)))
	if err != nil {
		t.Fatal(err)
	}
	for name := range liveMFs {
		if _, ok := mfs[name]; !ok && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("%s appears on this machine but in no fixture golden: add it to a fixture", name)
		}
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	if string(want) != got {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		in := func(l string, set []string) bool {
			for _, s := range set {
				if s == l {
					return true
				}
			}
			return false
		}
		var diff []string
		for _, l := range gl {
			if !in(l, wl) {
				diff = append(diff, "+ "+l)
			}
		}
		for _, l := range wl {
			if !in(l, gl) {
				diff = append(diff, "- "+l)
			}
		}
		t.Errorf("docs/metrics.md disagrees with the exporter's output (+ output, - doc); run go test ./cmd/smokemon_exporter -run TestMetricsDoc -update:\n%s", strings.Join(diff, "\n"))
	}
}
