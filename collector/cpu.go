package collector

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/sysfs"
)

// The cpu collector reports CPU time by mode summed over cores (per-core
// series add cardinality and little insight on a 4-core board), per-core
// frequency, thermal-throttle events, load and process starts.

func init() {
	registerCollector("cpu", true, newCPUCollector)
}

type cpuCollector struct {
	logger *slog.Logger

	// CPU topology does not change while a CPU number exists, and reading
	// it costs four files per CPU, so it is read once per CPU.
	topoMu sync.Mutex
	topo   map[string]sysfs.CPUTopology

	// The last good /proc/stat counters and their boot, to catch a read
	// whose counters went backwards.
	lastMu    sync.Mutex
	lastBoot  uint64
	lastTimes map[string]float64
	lastDone  time.Time // when the read of lastTimes finished

	seconds, count, forks, ctxt, running, blocked *prometheus.Desc
	load1, load5, load15                          *prometheus.Desc
	freq, freqMin, freqMax                        *prometheus.Desc
	coreThrottles, pkgThrottles                   *prometheus.Desc
}

func newCPUCollector(logger *slog.Logger) (Collector, error) {
	if _, err := procFS(); err != nil {
		return nil, err
	}
	if _, err := sysFS(); err != nil {
		return nil, err
	}
	return &cpuCollector{
		logger:        logger,
		topo:          map[string]sysfs.CPUTopology{},
		seconds:       hostDesc("cpu", "seconds_total", "CPU time spent in each mode, summed over all CPUs (divide a rate by smokemon_cpu_online for a 0-1 share).", "mode"),
		count:         hostDesc("cpu", "online", "Number of online CPUs (the per-CPU lines of /proc/stat)."),
		forks:         hostDesc("cpu", "forks_total", "Processes and threads created since boot."),
		ctxt:          hostDesc("cpu", "context_switches_total", "Context switches since boot."),
		running:       hostDesc("cpu", "processes_running", "Tasks currently runnable."),
		blocked:       hostDesc("cpu", "processes_blocked", "Tasks currently blocked waiting for IO."),
		load1:         hostDesc("cpu", "load1", "Load average over 1 minute."),
		load5:         hostDesc("cpu", "load5", "Load average over 5 minutes."),
		load15:        hostDesc("cpu", "load15", "Load average over 15 minutes."),
		freq:          hostDesc("cpu", "frequency_hertz", "Current frequency of a CPU.", "cpu"),
		freqMin:       hostDesc("cpu", "frequency_min_hertz", "Lowest frequency the CPU supports.", "cpu"),
		freqMax:       hostDesc("cpu", "frequency_max_hertz", "Highest frequency the CPU supports (current below it while busy means capping or throttling).", "cpu"),
		coreThrottles: hostDesc("cpu", "core_throttles_total", "Times a core was throttled for heat (x86 thermal_throttle).", "package", "core"),
		pkgThrottles:  hostDesc("cpu", "package_throttles_total", "Times a CPU package was throttled for heat (x86 thermal_throttle).", "package"),
	}, nil
}

func (c *cpuCollector) Update(ch chan<- prometheus.Metric) error {
	proc, err := procFS()
	if err != nil {
		return err
	}
	// Every Linux has /proc/stat: failing to read it is a real error.
	statPath := procFilePath("stat")
	began := time.Now()
	st, err := readGuarded(statPath, proc.Stat)
	if err != nil {
		return err
	}
	done := time.Now()
	if err := checkStat(st); err != nil {
		return fmt.Errorf("%s: %w", statPath, err)
	}
	if err := c.checkBackwards(st, began, done); err != nil {
		return fmt.Errorf("%s: %w", statPath, err)
	}
	t := st.CPUTotal
	for _, m := range []struct {
		mode string
		v    float64
	}{
		// guest time is already part of user and nice.
		{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle},
		{"iowait", t.Iowait}, {"irq", t.IRQ}, {"softirq", t.SoftIRQ}, {"steal", t.Steal},
	} {
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.CounterValue, m.v, m.mode)
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(len(st.CPU)))
	ch <- prometheus.MustNewConstMetric(c.forks, prometheus.CounterValue, float64(st.ProcessCreated))
	ch <- prometheus.MustNewConstMetric(c.ctxt, prometheus.CounterValue, float64(st.ContextSwitches))
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(st.ProcessesRunning))
	ch <- prometheus.MustNewConstMetric(c.blocked, prometheus.GaugeValue, float64(st.ProcessesBlocked))

	if l, err := readGuarded(procFilePath("loadavg"), proc.LoadAvg); err == nil {
		ch <- prometheus.MustNewConstMetric(c.load1, prometheus.GaugeValue, l.Load1)
		ch <- prometheus.MustNewConstMetric(c.load5, prometheus.GaugeValue, l.Load5)
		ch <- prometheus.MustNewConstMetric(c.load15, prometheus.GaugeValue, l.Load15)
	} else {
		skipSeries(c.logger, "loadavg", err)
	}
	sys, err := sysFS()
	if err != nil {
		return err
	}
	c.updateFrequency(ch, sys)
	c.updateThrottles(ch, sys)
	return nil
}

// checkBackwards compares a read only with one that finished before it
// began: concurrent scrapes read /proc/stat in any order, and an older
// read checked against a newer one would look like counters going back.
func (c *cpuCollector) checkBackwards(st procfs.Stat, began, done time.Time) error {
	cur := cpuTimes(st.CPUTotal)
	c.lastMu.Lock()
	defer c.lastMu.Unlock()
	if st.BootTime == c.lastBoot && began.After(c.lastDone) {
		if err := checkMonotonic(c.lastTimes, cur); err != nil {
			return err
		}
	}
	if done.After(c.lastDone) {
		c.lastBoot, c.lastTimes, c.lastDone = st.BootTime, cur, done
	}
	return nil
}

func (c *cpuCollector) updateFrequency(ch chan<- prometheus.Metric, sys sysfs.FS) {
	// VMs and some boards have no cpufreq.
	stats, ok := readSysfs(c.logger, "cpufreq", "devices/system/cpu", sys.SystemCpufreq, false, "devices/system/cpu/cpu*/cpufreq/*", "devices/system/cpu/cpufreq/policy*/*")
	if !ok {
		return
	}
	khz := func(d *prometheus.Desc, cpu string, vs ...*uint64) {
		for _, v := range vs {
			if v != nil {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(*v)*1e3, cpu)
				return
			}
		}
	}
	for _, s := range stats {
		if s.Name == "" {
			continue // a CPU without cpufreq
		}
		// cpuinfo_cur_freq is root-only on most kernels; scaling_cur_freq is what the governor set.
		khz(c.freq, s.Name, s.ScalingCurrentFrequency, s.CpuinfoCurrentFrequency)
		khz(c.freqMin, s.Name, s.CpuinfoMinimumFrequency, s.ScalingMinimumFrequency)
		khz(c.freqMax, s.Name, s.CpuinfoMaximumFrequency, s.ScalingMaximumFrequency)
	}
}

func (c *cpuCollector) updateThrottles(ch chan<- prometheus.Metric, sys sysfs.FS) {
	cpus, err := sys.CPUs()
	if err == nil {
		err = checkAttrs(false, "devices/system/cpu/cpu*/thermal_throttle/*", "devices/system/cpu/cpu*/topology/*")
	}
	if err != nil {
		skipSeries(c.logger, "cpu list", err)
		return
	}
	type coreKey struct{ pkg, core string }
	cores := map[coreKey]bool{}
	pkgs := map[string]bool{}
	for _, cpu := range cpus {
		tt, err := cpu.ThermalThrottle()
		if err != nil {
			continue // only x86 has thermal_throttle; nothing to log per CPU
		}
		topo, err := c.topology(cpu)
		if err != nil {
			skipSeries(c.logger, string(cpu)+"/topology", err)
			continue
		}
		// SMT siblings share their core's counter: report each core once.
		if k := (coreKey{topo.PhysicalPackageID, topo.CoreID}); !cores[k] {
			cores[k] = true
			ch <- prometheus.MustNewConstMetric(c.coreThrottles, prometheus.CounterValue, float64(tt.CoreThrottleCount), k.pkg, k.core)
		}
		if !pkgs[topo.PhysicalPackageID] {
			pkgs[topo.PhysicalPackageID] = true
			ch <- prometheus.MustNewConstMetric(c.pkgThrottles, prometheus.CounterValue, float64(tt.PackageThrottleCount), topo.PhysicalPackageID)
		}
	}
}

func (c *cpuCollector) topology(cpu sysfs.CPU) (sysfs.CPUTopology, error) {
	name := strings.TrimPrefix(filepath.Base(string(cpu)), "cpu")
	c.topoMu.Lock()
	defer c.topoMu.Unlock()
	if t, ok := c.topo[name]; ok {
		return t, nil
	}
	t, err := cpu.Topology()
	if err != nil {
		return sysfs.CPUTopology{}, err
	}
	c.topo[name] = *t
	return *t, nil
}
