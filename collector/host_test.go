package collector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlayher/wifi"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/internal/testutil"
)

// fixtureFiles returns the contents of every fixture file called name, to seed fuzzers.
func fixtureFiles(t testing.TB, match func(name string) bool) [][]byte {
	var out [][]byte
	err := filepath.WalkDir(filepath.Join("testdata", "fixtures"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !match(d.Name()) || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		out = append(out, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no fixture seeds")
	}
	return out
}

func named(n string) func(string) bool { return func(s string) bool { return s == n } }

func FuzzParseSysfsInt(f *testing.F) {
	for _, b := range fixtureFiles(f, func(n string) bool { return strings.HasSuffix(n, "_input") || n == "temp" }) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { parseSysfsInt(b) })
}

func FuzzParseHwmonAttrName(f *testing.F) {
	filepath.WalkDir(filepath.Join("testdata", "fixtures"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(p, "/hwmon/") {
			f.Add(d.Name())
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, name string) {
		kind, index, item, ok := parseHwmonAttrName(name)
		if ok && (kind+strings.TrimPrefix(name, kind) != name || index < 0 || item == "") {
			t.Errorf("%q: kind %q index %d item %q", name, kind, index, item)
		}
	})
}

// attrFiles turns "name=value" lines into a sysfs reader, so the INA3221
// parsers can be fuzzed with whole attribute sets.
func attrFiles(b []byte) ([]string, func(string) ([]byte, error)) {
	m := map[string][]byte{}
	var names []string
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		k, v, _ := bytes.Cut(line, []byte{'='})
		if _, dup := m[string(k)]; !dup {
			names = append(names, string(k))
		}
		m[string(k)] = v
	}
	return names, func(n string) ([]byte, error) {
		if v, ok := m[n]; ok {
			return v, nil
		}
		return nil, os.ErrNotExist
	}
}

// ina3221Seeds flattens the fixtures' INA3221 directories into attrFiles form.
func ina3221Seeds(f *testing.F) {
	for _, glob := range []string{"*/sys/bus/i2c/drivers/ina3221x/*/iio:device*", "*/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"} {
		dirs, _ := filepath.Glob(filepath.Join("testdata", "fixtures", glob))
		for _, d := range dirs {
			entries, _ := os.ReadDir(d)
			var seed []byte
			for _, e := range entries {
				if b, err := os.ReadFile(filepath.Join(d, e.Name())); err == nil {
					seed = append(seed, e.Name()+"="+strings.TrimSpace(string(b))+"\n"...)
				}
			}
			f.Add(seed)
		}
	}
}

func FuzzINA3221(f *testing.F) {
	ina3221Seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		names, read := attrFiles(b)
		rails := append(ina3221IIORails(read), ina3221HwmonRails(hwmonSensors(names, read))...)
		for _, r := range rails {
			if r.name == "" {
				t.Errorf("rail without a name: %+v", r)
			}
		}
	})
}

func TestINA3221Layouts(t *testing.T) {
	_, read := attrFiles([]byte("rail_name_0=POM_5V_IN\nin_power0_input=2461\nin_current0_input=492\nin_voltage0_input=5000\nrail_name_2=POM_5V_CPU\nin_power2_input=675"))
	got := ina3221IIORails(read)
	want := []powerRail{{name: "POM_5V_IN", volts: 5, amps: 0.492, watts: 2.461, hasV: true, hasA: true, hasW: true}, {name: "POM_5V_CPU", watts: 0.675, hasW: true}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("IIO rails = %+v, want %+v", got, want)
	}
	names, read := attrFiles([]byte("in1_label=VDD_IN\nin1_input=5000\ncurr1_input=1500\nin2_label=VDD_SOC\nin2_input=5100\nin4_input=12\ncurr4_input=1600"))
	got = ina3221HwmonRails(hwmonSensors(names, read))
	want = []powerRail{{name: "VDD_IN", volts: 5, amps: 1.5, watts: 7.5, hasV: true, hasA: true, hasW: true}, {name: "VDD_SOC", volts: 5.1, hasV: true}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("hwmon rails = %+v, want %+v", got, want)
	}
}

func FuzzParseThrottledHex(f *testing.F) {
	for _, b := range fixtureFiles(f, named("get_throttled")) {
		f.Add(b)
	}
	f.Add([]byte("0x50000\n"))
	f.Fuzz(func(t *testing.T, b []byte) { parseThrottledHex(b) })
}

func mailboxReply(code, tag, respLen, value uint32) []byte {
	var b []byte
	for _, w := range []uint32{32, code, tag, 4, respLen, value, 0, 0} {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

func FuzzParseMailboxThrottled(f *testing.F) {
	for _, b := range fixtureFiles(f, named("get_throttled")) {
		v, err := parseThrottledHex(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mailboxReply(mboxResponseOK, mboxTagGetThrottled, mboxResponseOK|4, v))
	}
	f.Fuzz(func(t *testing.T, b []byte) { parseMailboxThrottled(b) })
}

func TestParseMailboxThrottled(t *testing.T) {
	if v, err := parseMailboxThrottled(mailboxReply(mboxResponseOK, mboxTagGetThrottled, mboxResponseOK|4, 0x50005)); err != nil || v != 0x50005 {
		t.Errorf("good reply: %#x, %v", v, err)
	}
	for name, b := range map[string][]byte{
		"error code":   mailboxReply(0x80000001, mboxTagGetThrottled, mboxResponseOK|4, 1),
		"other tag":    mailboxReply(mboxResponseOK, 0x00030002, mboxResponseOK|4, 1),
		"not answered": mailboxReply(mboxResponseOK, mboxTagGetThrottled, 0, 1),
		"short":        mailboxReply(mboxResponseOK, mboxTagGetThrottled, mboxResponseOK|4, 1)[:20],
	} {
		if _, err := parseMailboxThrottled(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A /dev/vcio that does not answer the ioctl (here a plain file) costs the
// throttle series, not the collector.
func TestRPiMailboxFailureDegrades(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"proc", "sys", "dev"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "dev", "vcio"), nil, 0o644)
	withPaths(t, root)
	c, err := newPowerCollector(testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.(*powerCollector).rpiThrottled(); err == nil {
		t.Error("mailbox on a plain file succeeded")
	}
	if n, err := countMetrics(c); n != 0 || !errors.Is(err, ErrNoData) {
		t.Errorf("power on an empty machine: %d metrics, %v", n, err)
	}
}

func FuzzParseVmstatValue(f *testing.F) {
	for _, b := range fixtureFiles(f, named("vmstat")) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { parseVmstatValue(b, "oom_kill") })
}

func FuzzParseEMMC(f *testing.F) {
	for _, b := range fixtureFiles(f, func(n string) bool { return n == "life_time" || n == "pre_eol_info" }) {
		f.Add(b)
	}
	f.Add([]byte("01 0B"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, bb, err := parseEMMCLifeTime(b); err == nil && (a < 0 || a > 11 || bb < 0 || bb > 11) {
			t.Errorf("life_time %q = %d %d", b, a, bb)
		}
		if v, err := parseEMMCPreEOL(b); err == nil && (v < 0 || v > 3) {
			t.Errorf("pre_eol_info %q = %d", b, v)
		}
	})
}

func FuzzParseGPULoad(f *testing.F) {
	for _, b := range fixtureFiles(f, named("load")) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := parseGPULoad(b); err == nil && (v < 0 || v > 1) {
			t.Errorf("load %q = %v", b, v)
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	for _, b := range fixtureFiles(f, named("os-release")) {
		f.Add(b)
	}
	f.Add([]byte("NAME='Alpine Linux'\nVERSION_ID=3.20.1\n"))
	f.Fuzz(func(t *testing.T, b []byte) { parseOSRelease(b) })
}

func FuzzParseDeviceTreeString(f *testing.F) {
	for _, b := range fixtureFiles(f, named("model")) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if s := parseDeviceTreeString(b); strings.ContainsRune(s, 0) {
			t.Errorf("%q kept a NUL", s)
		}
	})
}

func TestParseOSRelease(t *testing.T) {
	for in, want := range map[string]string{
		"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=x\n": "Debian GNU/Linux 12 (bookworm)",
		"NAME='Alpine Linux'\nVERSION_ID=3.20.1\n":                 "Alpine Linux 3.20.1",
		"# comment\nPRETTY_NAME=\"say \\\"hi\\\"\"":                `say "hi"`,
	} {
		if got := parseOSRelease([]byte(in)); got != want {
			t.Errorf("parseOSRelease(%q) = %q, want %q", in, got, want)
		}
	}
}

// countMetrics runs one Update and counts what it sent.
func countMetrics(c Collector) (int, error) {
	ch := make(chan prometheus.Metric)
	done := make(chan error)
	go func() { err := c.Update(ch); close(ch); done <- err }()
	n := 0
	for range ch {
		n++
	}
	return n, <-done
}

// fakeWifi is one station interface whose access point the test moves.
type fakeWifi struct{ bssid []string }

func (f *fakeWifi) Interfaces() ([]*wifi.Interface, error) {
	return []*wifi.Interface{{Index: 3, Name: "wlan0", Type: wifi.InterfaceTypeStation, Frequency: 5180}}, nil
}
func (f *fakeWifi) BSS(*wifi.Interface) (*wifi.BSS, error) {
	if len(f.bssid) == 0 || f.bssid[0] == "" {
		return nil, os.ErrNotExist
	}
	mac, _ := net.ParseMAC(f.bssid[0])
	return &wifi.BSS{SSID: "edge", BSSID: mac}, nil
}
func (f *fakeWifi) StationInfo(*wifi.Interface) ([]*wifi.StationInfo, error) {
	return []*wifi.StationInfo{{Signal: -61, TransmitRetries: 12, BeaconLoss: 1}}, nil
}
func (f *fakeWifi) Close() error { return nil }

func TestWifiRoams(t *testing.T) {
	fake := &fakeWifi{}
	c, err := newWifi(testutil.Logger(), func() (wifiClient, error) { return fake, nil })
	if err != nil {
		t.Fatal(err)
	}
	w := c.(*wifiCollector)
	// A, A, disconnected, A, B, A: two roams; a reconnect to the same AP is none.
	for _, b := range []string{"02:00:00:00:00:0a", "02:00:00:00:00:0a", "", "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0a"} {
		fake.bssid = []string{b}
		w.mu.Lock()
		w.sample()
		w.mu.Unlock()
	}
	set := SetOf(testutil.Logger(), map[string]Collector{"wifi": c})
	mfs := testutil.Gather(t, set)
	got := map[string]*dto.Metric{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0]
	}
	if v := got["smokemon_wifi_roams_total"].GetCounter().GetValue(); v != 2 {
		t.Errorf("roams = %v, want 2", v)
	}
	if v := got["smokemon_wifi_signal_dbm"].GetGauge().GetValue(); v != -61 {
		t.Errorf("signal = %v", v)
	}
	if v := got["smokemon_wifi_frequency_hertz"].GetGauge().GetValue(); v != 5.18e9 {
		t.Errorf("frequency = %v", v)
	}
	if err := w.Close(); err != nil {
		t.Error(err)
	}
	w.Close() // the framework may close twice on shutdown paths
}

// Every host collector runs against this machine's /proc and /sys.
func TestHostCollectorsLive(t *testing.T) {
	cfg := testConfig()
	mustHaveData := map[string]bool{"cpu": true, "memory": true, "netstat": true, "disk": true, "nodeinfo": true}
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil {
		mustHaveData["pressure"] = true
	}
	for _, name := range HostCollectors() {
		t.Run(name, func(t *testing.T) {
			c, err := factories[name].factory(testutil.Logger(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if cl, ok := c.(Closer); ok {
				defer cl.Close()
			}
			n, err := countMetrics(c)
			if err != nil && !errors.Is(err, ErrNoData) {
				t.Fatalf("Update: %v", err)
			}
			if mustHaveData[name] && n == 0 {
				t.Errorf("no metrics from %s on a live Linux machine", name)
			}
			t.Logf("%d metrics (%v)", n, err)
		})
	}
}

func BenchmarkHostScrape(b *testing.B) {
	set, err := NewSet(testutil.Logger(), testConfig(), HostCollectors())
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(set)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
