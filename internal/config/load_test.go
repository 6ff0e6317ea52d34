package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// warnings is a logger that counts what it is told at WARN and above.
func warnings() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelWarn})), &b
}

// A config that would drop every target is refused, with the file named
// and the way out; --config.allow-empty takes it with one warning.
func TestLoadRefusesAConfigWithNoTargets(t *testing.T) {
	for name, content := range map[string]string{
		"empty":          "",
		"comments only":  "# nothing yet\n\n",
		"global only":    "global:\n  interval: 2s\n",
		"empty sections": "ping: {targets: []}\nmtr: {targets: []}\nhttp: {targets: []}\ndns: {targets: []}\ntcp: {targets: []}\nsynthetic: {captive_portal: [], doh: []}\nbandwidth: {targets: []}\nmesh: {peers: []}\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := writeTemp(t, "c.yml", content)
			logger, logged := warnings()
			_, err := Load(Options{File: f}, logger)
			if err == nil || !strings.HasPrefix(err.Error(), f+": no targets:") || !strings.Contains(err.Error(), "--config.allow-empty") {
				t.Errorf("err = %v", err)
			}
			if logged.Len() != 0 {
				t.Errorf("a refused config logged %q", logged)
			}
			c, err := Load(Options{File: f, AllowEmpty: true}, logger)
			if err != nil || c.Targets() != 0 {
				t.Fatalf("with AllowEmpty: %v, %v", c, err)
			}
			if n := strings.Count(logged.String(), "level=WARN"); n != 1 || !strings.Contains(logged.String(), "NO TARGETS") || !strings.Contains(logged.String(), f) {
				t.Errorf("want one loud warning naming the file, got %d lines:\n%s", n, logged)
			}
		})
	}
}

// The embedded default pings localhost; quick-start hosts replace it or
// fill an empty file; a responder or a peers file is a job of its own.
func TestLoadWhatIsNotEmpty(t *testing.T) {
	empty := writeTemp(t, "empty.yml", "")
	for _, tc := range []struct {
		name    string
		o       Options
		targets []string // the ping targets, when the case is about them
	}{
		{"embedded default", Options{}, []string{"localhost"}},
		{"default with hosts", Options{Hosts: []string{"198.18.0.1"}}, []string{"198.18.0.1"}},
		{"empty file with hosts", Options{File: empty, Hosts: []string{"198.18.0.2"}}, []string{"198.18.0.2"}},
		{"http only", Options{File: writeTemp(t, "h.yml", "http:\n  targets:\n    - url: http://198.18.0.1/\n")}, nil},
		{"mesh responder only", Options{File: writeTemp(t, "r.yml", "mesh:\n  responder: {udp_port: 9918}\n")}, nil},
		{"mesh peers_file only", Options{File: writeTemp(t, "p.yml", "mesh:\n  peers_file: /nonexistent/peers.yml\n")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger, logged := warnings()
			c, err := Load(tc.o, logger)
			if err != nil {
				t.Fatal(err)
			}
			if logged.Len() != 0 {
				t.Errorf("logged %q", logged)
			}
			if tc.targets == nil {
				return
			}
			var got []string
			for _, tg := range c.Ping.Targets {
				got = append(got, tg.Host)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.targets) {
				t.Errorf("ping targets %v, want %v", got, tc.targets)
			}
		})
	}
}

func TestFileSizeLimit(t *testing.T) {
	// A comment pads the file to the limit exactly, which is allowed.
	atLimit := "ping:\n  targets:\n    - host: 198.18.0.1\n#"
	atLimit += strings.Repeat("x", MaxFileSize-len(atLimit)-1) + "\n"
	if _, err := LoadFile(writeTemp(t, "ok.yml", atLimit)); err != nil {
		t.Errorf("a file of exactly %d bytes: %v", MaxFileSize, err)
	}
	f := writeTemp(t, "big.yml", atLimit+"\n")
	_, err := LoadFile(f)
	want := f + ": the config file is 1.0 MiB (1048577 bytes), over the limit of 1 MiB (1048576 bytes)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	if _, err := Parse([]byte(atLimit+"\n"), "data.yml"); err == nil || !strings.HasPrefix(err.Error(), "data.yml: the config file is 1.0 MiB (1048577 bytes)") {
		t.Errorf("Parse: %v", err)
	}
	// A peers file has the same limit.
	m := &MeshConfig{PeersFile: writeTemp(t, "peers.yml", strings.Repeat("#\n", MaxFileSize/2+1))}
	if _, err := m.LoadPeersFile(); err == nil || !strings.HasPrefix(err.Error(), m.PeersFile+": the peers file is 1.0 MiB (1048578 bytes)") {
		t.Errorf("peers file: %v", err)
	}
}

// Every target list is capped, and the error points at the first entry
// over the limit: file, line, section and index.
func TestEntriesPerListLimit(t *testing.T) {
	for _, tc := range []struct{ section, head, entry string }{
		{"ping.targets", "ping:\n  targets:\n", "    - {host: t%d.test}\n"},
		{"mtr.targets", "mtr:\n  targets:\n", "    - {host: t%d.test}\n"},
		{"http.targets", "http:\n  targets:\n", "    - {url: 'http://t%d.test/'}\n"},
		{"dns.targets", "dns:\n  targets:\n", "    - {server: '198.18.0.1:53', query: t%d.test}\n"},
		{"tcp.targets", "tcp:\n  targets:\n", "    - {address: 't%d.test:80'}\n"},
		{"synthetic.captive_portal", "synthetic:\n  captive_portal:\n", "    - {url: 'http://t%d.test/'}\n"},
		{"synthetic.doh", "synthetic:\n  doh:\n", "    - {url: 'https://t%d.test/dns-query', query: a.test}\n"},
		{"bandwidth.targets", "bandwidth:\n  targets:\n", "    - {server: 't%d.test:5201'}\n"},
		{"mesh.peers", "global:\n  interval: 10s\nmesh:\n  peers:\n", "    - {address: 't%d.test:9918'}\n"},
	} {
		t.Run(tc.section, func(t *testing.T) {
			var b strings.Builder
			b.WriteString(tc.head)
			for i := range MaxEntries {
				fmt.Fprintf(&b, tc.entry, i)
			}
			// At the limit, no limit error (other checks may still object).
			if _, err := Parse([]byte(b.String()), "cfg.yml"); err != nil && strings.Contains(err.Error(), "more than") {
				t.Errorf("%d entries: %v", MaxEntries, err)
			}
			fmt.Fprintf(&b, tc.entry, MaxEntries)
			_, err := Parse([]byte(b.String()), "cfg.yml")
			line := strings.Count(tc.head, "\n") + MaxEntries + 1
			want := fmt.Sprintf("cfg.yml:%d: %s[10000]: %s has more than 10000 entries", line, tc.section, tc.section)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err = %v\nwant %s", err, want)
			}
		})
	}
	var b strings.Builder
	for i := range MaxEntries + 1 {
		fmt.Fprintf(&b, "- {address: 't%d.test:9918'}\n", i)
	}
	_, err := (&MeshConfig{}).ParsePeers([]byte(b.String()), "peers.yml")
	if want := "peers.yml:10001: peers[10000]: peers has more than 10000 entries"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("peers file: %v\nwant %s", err, want)
	}
	b.Reset()
	b.WriteString("ping:\n  targets:\n    - host: a.test\n      labels:\n")
	for i := range MaxEntries + 1 {
		fmt.Fprintf(&b, "        l%d: v\n", i)
	}
	_, err = Parse([]byte(b.String()), "cfg.yml")
	if want := "cfg.yml:10005: ping.targets[0].labels: more than 10000 keys (it has 10001)"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("labels: %v\nwant %s", err, want)
	}
}

// 10 000 valid targets, the most a list may hold, load.
func TestTenThousandTargetsLoad(t *testing.T) {
	var b strings.Builder
	b.WriteString("global: {interval: 10s}\nping:\n  targets:\n")
	for i := range MaxEntries {
		fmt.Fprintf(&b, "    - host: t%05d.test\n", i)
	}
	c, err := Parse([]byte(b.String()), "cfg.yml")
	if err != nil || len(c.Ping.Targets) != MaxEntries {
		t.Fatalf("%v", err)
	}
}

// Targets counts every list of targets or peers, including those of a
// section added later: any slice of structs in a section is one, but for
// the settings lists named here.
var settingsLists = map[string]bool{"Bandwidth.Grades": true}

func TestTargetsCountsEverySection(t *testing.T) {
	lists := 0
	cv := reflect.ValueOf(&Config{}).Elem()
	for i := range cv.NumField() {
		sec := cv.Field(i)
		if sec.Kind() != reflect.Struct {
			continue
		}
		for j := range sec.NumField() {
			f := sec.Field(j)
			if f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Struct ||
				settingsLists[cv.Type().Field(i).Name+"."+sec.Type().Field(j).Name] {
				continue
			}
			c := &Config{}
			reflect.ValueOf(c).Elem().Field(i).Field(j).Set(reflect.MakeSlice(f.Type(), 1, 1))
			if c.Targets() != 1 || c.Idle() {
				t.Errorf("%s.%s: one entry counts as %d targets (idle %v)", cv.Type().Field(i).Name, sec.Type().Field(j).Name, c.Targets(), c.Idle())
			}
			lists++
		}
	}
	if lists < 9 {
		t.Errorf("found only %d target lists", lists)
	}
	if !(&Config{}).Idle() {
		t.Error("a zero Config is not idle")
	}
}
