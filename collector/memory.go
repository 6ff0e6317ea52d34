package collector

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The memory collector reports the few memory figures that explain a stall:
// what is available, swap in use, page cache, and OOM kills.

func init() {
	registerCollector("memory", true, newMemoryCollector)
}

type memoryCollector struct {
	logger *slog.Logger

	total, available, free, cached, swapTotal, swapUsed, oomKills *prometheus.Desc
}

func newMemoryCollector(logger *slog.Logger) (Collector, error) {
	if _, err := procFS(); err != nil {
		return nil, err
	}
	return &memoryCollector{
		logger:    logger,
		total:     hostDesc("memory", "total_bytes", "Usable RAM (MemTotal)."),
		available: hostDesc("memory", "available_bytes", "Memory available for new work without swapping (MemAvailable)."),
		free:      hostDesc("memory", "free_bytes", "Memory not used for anything (MemFree)."),
		cached:    hostDesc("memory", "page_cache_bytes", "Memory holding file contents (Cached plus Buffers)."),
		swapTotal: hostDesc("memory", "swap_total_bytes", "Swap space configured (zram included)."),
		swapUsed:  hostDesc("memory", "swap_used_bytes", "Swap space in use."),
		oomKills:  hostDesc("memory", "oom_kills_total", "Processes killed by the kernel's out-of-memory killer since boot."),
	}, nil
}

func (c *memoryCollector) Update(ch chan<- prometheus.Metric) error {
	fs, err := procFS()
	if err != nil {
		return err
	}
	path := procFilePath("meminfo")
	mi, err := readGuarded(path, fs.Meminfo)
	if err != nil {
		return err
	}
	if err := checkMeminfo(mi); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	gauge := func(d *prometheus.Desc, v *uint64) {
		if v != nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(*v))
		}
	}
	gauge(c.total, mi.MemTotalBytes)
	gauge(c.available, mi.MemAvailableBytes)
	gauge(c.free, mi.MemFreeBytes)
	if mi.CachedBytes != nil && mi.BuffersBytes != nil {
		ch <- prometheus.MustNewConstMetric(c.cached, prometheus.GaugeValue, float64(*mi.CachedBytes+*mi.BuffersBytes))
	}
	gauge(c.swapTotal, mi.SwapTotalBytes)
	if mi.SwapTotalBytes != nil && mi.SwapFreeBytes != nil {
		ch <- prometheus.MustNewConstMetric(c.swapUsed, prometheus.GaugeValue, float64(*mi.SwapTotalBytes-*mi.SwapFreeBytes))
	}

	// procfs has no /proc/vmstat parser.
	b, err := readFileNoBlock(procFilePath("vmstat"))
	if err != nil {
		skipSeries(c.logger, "vmstat", err)
		return nil
	}
	switch v, ok, err := parseVmstatValue(b, "oom_kill"); {
	case err != nil:
		skipSeries(c.logger, "vmstat oom_kill", err)
	case ok:
		ch <- prometheus.MustNewConstMetric(c.oomKills, prometheus.CounterValue, float64(v))
	default:
		skipSeries(c.logger, "vmstat oom_kill", fmt.Errorf("not in this kernel's vmstat (before 4.13)"))
	}
	return nil
}

// parseVmstatValue finds one "name value" line of /proc/vmstat.
func parseVmstatValue(b []byte, key string) (v uint64, ok bool, err error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		name, val, found := bytes.Cut(line, []byte{' '})
		if !found || string(name) != key {
			continue
		}
		v, err = strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("vmstat %s: %w", key, err)
		}
		return v, true, nil
	}
	return 0, false, nil
}
