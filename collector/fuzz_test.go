package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// The hand parsers have their fuzz targets in host_test.go; this one covers
// the procfs entry points. .ci/fuzz runs each for FUZZTIME.

// procfsFiles are the procfs entry points the collectors call, each with
// the file it reads (relative to --path.procfs) and the check the
// collector applies to what it returns.
var procfsFiles = []struct {
	file string
	read func(fs procfs.FS) error
}{
	{"stat", func(fs procfs.FS) error {
		st, err := fs.Stat()
		if err == nil {
			err = checkStat(st)
		}
		return err
	}},
	{"meminfo", func(fs procfs.FS) error {
		mi, err := fs.Meminfo()
		if err == nil {
			err = checkMeminfo(mi)
		}
		return err
	}},
	{"loadavg", func(fs procfs.FS) error { _, err := fs.LoadAvg(); return err }},
	{"net/dev", func(fs procfs.FS) error { _, err := fs.NetDev(); return err }},
	{"net/stat/nf_conntrack", func(fs procfs.FS) error { _, err := fs.ConntrackStat(); return err }},
	{"net/wireless", func(fs procfs.FS) error { _, err := fs.Wireless(); return err }},
	{"pressure/cpu", func(fs procfs.FS) error { _, err := fs.PSIStatsForResource("cpu"); return err }},
	{"self/net/snmp", func(fs procfs.FS) error {
		p, err := fs.Self()
		if err == nil {
			_, err = p.Snmp()
		}
		return err
	}},
	{"self/net/netstat", func(fs procfs.FS) error {
		p, err := fs.Self()
		if err == nil {
			_, err = p.Netstat()
		}
		return err
	}},
	{"1/mountinfo", func(fs procfs.FS) error { _, err := fs.GetProcMounts(1); return err }},
}

// FuzzProcfsFiles writes data as one of the files above in a procfs tree
// and reads it the way the collector does: whatever the bytes, the read
// returns (a panic inside procfs becomes an error naming the file), and a
// /proc/stat or meminfo that passes its check has what the check demands.
func FuzzProcfsFiles(f *testing.F) {
	for i, pf := range procfsFiles {
		for _, board := range fixtureBoards {
			if b, err := os.ReadFile(filepath.Join("testdata", "fixtures", board, "proc", pf.file)); err == nil {
				f.Add(uint8(i), b)
			}
		}
		f.Add(uint8(i), []byte(""))
	}
	f.Add(uint8(3), []byte("Inter-|\n face |\n eth0: 1 2 3 4 5 6 7 8 9\n"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		pf := procfsFiles[int(which)%len(procfsFiles)]
		root := t.TempDir()
		for _, d := range []string{"1/net/stat", "pressure"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		os.Symlink("1", filepath.Join(root, "self"))
		os.Symlink("self/net", filepath.Join(root, "net"))
		os.WriteFile(filepath.Join(root, "1", "stat"), []byte("1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1\n"), 0o644)
		// net and self are symlinks to 1's, as in the fixtures.
		path := filepath.Join(root, pf.file)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fs, err := procfs.NewFS(root)
		if err != nil {
			t.Fatal(err)
		}
		_, err = readGuarded(path, func() (struct{}, error) { return struct{}{}, pf.read(fs) })
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Errorf("error does not name %s: %v", path, err)
		}
	})
}
