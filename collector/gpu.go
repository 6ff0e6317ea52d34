package collector

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// The gpu collector reports the Jetson integrated GPU's load and clock: a
// busy inference job explains CPU, power and thermal curves alike.

func init() {
	registerCollector("gpu", true, newGPUCollector)
}

// jetsonGPUDirs are where the Jetson generations put the GPU device, newest
// last: Nano/TX (gpu.0), Xavier (gv11b), Orin on JetPack 5 (ga10b) and 6 (bus@0).
var jetsonGPUDirs = []string{
	"devices/gpu.0",
	"devices/platform/gpu.0",
	"devices/17000000.gv11b",
	"devices/platform/17000000.gv11b",
	"devices/platform/17000000.ga10b",
	"devices/platform/bus@0/17000000.gpu",
}

type gpuCollector struct {
	logger *slog.Logger

	load, freq, freqMax *prometheus.Desc
}

func newGPUCollector(logger *slog.Logger) (Collector, error) {
	return &gpuCollector{
		logger:  logger,
		load:    hostDesc("gpu", "load_ratio", "Share of recent time the Jetson GPU was busy (0-1)."),
		freq:    hostDesc("gpu", "frequency_hertz", "Current Jetson GPU clock."),
		freqMax: hostDesc("gpu", "frequency_max_hertz", "Highest Jetson GPU clock the frequency governor may choose now."),
	}, nil
}

func (c *gpuCollector) Update(ch chan<- prometheus.Metric) error {
	// Looked up on every scrape: the GPU node may appear after the exporter
	// starts (nvgpu loads late), and a few failed opens cost microseconds.
	for _, d := range jetsonGPUDirs {
		dir := sysFilePath(d)
		b, err := readFileNoBlock(filepath.Join(dir, "load"))
		if err != nil {
			continue
		}
		load, err := parseGPULoad(b)
		if err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.load, prometheus.GaugeValue, load)
		devfreq, _ := filepath.Glob(filepath.Join(dir, "devfreq", "*"))
		for _, df := range devfreq {
			for _, f := range []struct {
				file string
				desc *prometheus.Desc
			}{{"cur_freq", c.freq}, {"max_freq", c.freqMax}} {
				hz, err := readSysfsInt(filepath.Join(df, f.file))
				if err != nil {
					skipSeries(c.logger, df+"/"+f.file, err)
					continue
				}
				ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, float64(hz))
			}
			break // one GPU, one devfreq node
		}
		return nil
	}
	return ErrNoData
}

// parseGPULoad turns the nvgpu load attribute, per mille, into a ratio.
func parseGPULoad(b []byte) (float64, error) {
	v, err := parseSysfsInt(b)
	if err != nil {
		return 0, fmt.Errorf("gpu load: %w", err)
	}
	if v < 0 || v > 1000 {
		return 0, fmt.Errorf("gpu load %d outside 0-1000", v)
	}
	return float64(v) / 1000, nil
}
