package collector

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// The pressure collector reports Linux pressure stall information: the time
// tasks could not run for want of CPU, memory or IO, which is how "the box
// was busy" shows up next to a latency spike.

func init() {
	registerCollector("pressure", true, newPressureCollector)
}

type pressureCollector struct {
	logger *slog.Logger
	descs  []pressureDescs
}

type pressureDescs struct {
	resource   string
	some, full *prometheus.Desc
}

func newPressureCollector(logger *slog.Logger) (Collector, error) {
	if _, err := procFS(); err != nil {
		return nil, err
	}
	c := &pressureCollector{logger: logger}
	for _, r := range []string{"cpu", "memory", "io", "irq"} {
		d := pressureDescs{resource: r}
		// System-wide "full" CPU pressure is undefined (the kernel reports 0)
		// and irq has only "full".
		if r != "irq" {
			d.some = hostDesc("pressure", r+"_waiting_seconds_total", "Time in which at least one task was stalled waiting for "+r+" (PSI some).")
		}
		if r != "cpu" {
			d.full = hostDesc("pressure", r+"_stalled_seconds_total", "Time in which all non-idle tasks were stalled on "+r+" at once (PSI full).")
		}
		c.descs = append(c.descs, d)
	}
	return c, nil
}

func (c *pressureCollector) Update(ch chan<- prometheus.Metric) error {
	fs, err := procFS()
	if err != nil {
		return err
	}
	n := 0
	for _, d := range c.descs {
		st, err := readGuarded(procFilePath("pressure", d.resource), func() (procfs.PSIStats, error) { return fs.PSIStatsForResource(d.resource) })
		if err != nil {
			// No PSI (kernel without it, psi=0, irq before 6.1): skip.
			skipSeries(c.logger, "pressure/"+d.resource, err)
			continue
		}
		if d.some != nil && st.Some != nil {
			ch <- prometheus.MustNewConstMetric(d.some, prometheus.CounterValue, float64(st.Some.Total)/1e6)
			n++
		}
		if d.full != nil && st.Full != nil {
			ch <- prometheus.MustNewConstMetric(d.full, prometheus.CounterValue, float64(st.Full.Total)/1e6)
			n++
		}
	}
	if n == 0 {
		return ErrNoData
	}
	return nil
}
