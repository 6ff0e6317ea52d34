package collector

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/procfs"
)

// Checks on what the parsers return. A file that is empty, cut short or
// garbage must fail its collector (or lose its own series) with an error
// naming the file, never pass for a machine with zero CPUs or no memory:
// Prometheus takes a counter at 0 for a reset, the analyzer for a signal.

// readGuarded runs one procfs or sysfs call that reads path. A panic inside
// the library (procfs indexes a short /proc/net/dev line without checking
// it) becomes that file's error, so it costs only that file's series, and
// every error names the file.
func readGuarded[T any](path string, read func() (T, error)) (v T, err error) {
	if err := checkProcText(path); err != nil {
		return v, err
	}
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fmt.Errorf("%s: parser panicked: %v", path, r)
		}
	}()
	v, err = read()
	if err != nil && !strings.Contains(err.Error(), path) {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return v, err
}

// checkStat rejects a /proc/stat no kernel writes: one without per-CPU
// lines or with a CPU total that cannot be (every running CPU has spent
// some time in some mode since boot).
func checkStat(st procfs.Stat) error {
	if len(st.CPU) == 0 {
		return errors.New("no per-CPU lines")
	}
	t := st.CPUTotal
	if t.User+t.Nice+t.System+t.Idle+t.Iowait+t.IRQ+t.SoftIRQ+t.Steal <= 0 {
		return errors.New("no time in any mode on the cpu line")
	}
	if st.BootTime == 0 {
		return errors.New("no btime line")
	}
	return nil
}

// checkMeminfo rejects a meminfo without MemTotal: every kernel prints it
// first, so its absence means the file is cut or not meminfo.
func checkMeminfo(mi procfs.Meminfo) error {
	if mi.MemTotalBytes == nil || *mi.MemTotalBytes == 0 {
		return errors.New("no MemTotal")
	}
	if mi.MemFreeBytes != nil && *mi.MemFreeBytes > *mi.MemTotalBytes {
		return fmt.Errorf("MemFree %d above MemTotal %d", *mi.MemFreeBytes, *mi.MemTotalBytes)
	}
	if mi.SwapTotalBytes != nil && mi.SwapFreeBytes != nil && *mi.SwapFreeBytes > *mi.SwapTotalBytes {
		return fmt.Errorf("SwapFree %d above SwapTotal %d", *mi.SwapFreeBytes, *mi.SwapTotalBytes)
	}
	return nil
}

// cpuTimes are the /proc/stat counters checked for going backwards. iowait
// is left out: the kernel's own per-CPU iowait accounting can step back
// (node_exporter's cpu collector works around the same thing).
func cpuTimes(t procfs.CPUStat) map[string]float64 {
	return map[string]float64{"user": t.User, "nice": t.Nice, "system": t.System, "idle": t.Idle,
		"irq": t.IRQ, "softirq": t.SoftIRQ, "steal": t.Steal}
}

// checkMonotonic rejects counters that went backwards since the last good
// read of the same boot: a reset without a reboot is a bad read.
func checkMonotonic(prev, cur map[string]float64) error {
	for k, v := range cur {
		if p, ok := prev[k]; ok && v < p {
			return fmt.Errorf("counter %s went backwards (%g after %g) with the same btime", k, v, p)
		}
	}
	return nil
}

// sysfsAttrMax is the most a sysfs attribute can hold: one page.
const sysfsAttrMax = 4096

// checkText rejects text the kernel never writes in /proc and /sys: every
// such file ends with a newline (one without was cut short) and is UTF-8
// (a label that is not would panic in client_golang).
func checkText(path string, b []byte) error {
	switch {
	case len(b) == 0:
		return fmt.Errorf("%s: empty", path)
	case b[len(b)-1] != '\n':
		return fmt.Errorf("%s: no final newline (cut short)", path)
	case !utf8.Valid(b):
		return fmt.Errorf("%s: not UTF-8 text", path)
	}
	return nil
}

// checkAttr is checkText plus the one-page limit of a sysfs attribute.
func checkAttr(path string, b []byte) error {
	if len(b) > sysfsAttrMax {
		return fmt.Errorf("%s: %d bytes, more than a sysfs attribute holds", path, len(b))
	}
	return checkText(path, b)
}

// checkAttrs reads the sysfs attributes matching the globs (relative to
// --path.sysfs) before a procfs/sysfs library call that reads them and
// cannot say when one was cut short or is garbage: a truncated
// scaling_cur_freq would otherwise pass as a frequency 1000 times too low.
// An attribute that cannot be read is left to the library, which knows
// which ones are optional, and so is an empty one when emptyOK (the
// library fails the attribute's parse and leaves out that one item).
func checkAttrs(emptyOK bool, globs ...string) error {
	for _, g := range globs {
		paths, _ := filepath.Glob(sysFilePath(g))
		for _, p := range paths {
			b, err := readRaw(p)
			if err != nil || emptyOK && len(b) == 0 {
				continue
			}
			if err := checkAttr(p, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkProcText pre-reads a /proc file that a procfs parser will read, to
// reject it as checkText does; not a regular file (a FIFO, a directory) is
// left to the parser's own error or the scrape deadline.
func checkProcText(path string) error {
	b, err := readRaw(path)
	if err != nil || len(b) == 0 {
		return nil // an empty file is for the parser and its check to judge
	}
	return checkText(path, b)
}
