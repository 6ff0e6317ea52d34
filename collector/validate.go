package collector

import (
	"errors"
	"fmt"
	"strings"

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
