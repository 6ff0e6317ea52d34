package collector

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/internal/testutil"
)

type fnCollector func(ch chan<- prometheus.Metric) error

func (f fnCollector) Update(ch chan<- prometheus.Metric) error { return f(ch) }

var okDesc = prometheus.NewDesc("smokemon_test_ok", "A test gauge.", nil, nil)

// One collector failing, panicking or having nothing to say must never fail
// the scrape or hide the others' metrics.
func TestSetIsolatesCollectors(t *testing.T) {
	s := SetOf(testutil.Logger(), map[string]Collector{
		"good": fnCollector(func(ch chan<- prometheus.Metric) error {
			ch <- prometheus.MustNewConstMetric(okDesc, prometheus.GaugeValue, 1)
			return nil
		}),
		"failing": fnCollector(func(chan<- prometheus.Metric) error { return errors.New("sensor gone") }),
		"panicky": fnCollector(func(chan<- prometheus.Metric) error { panic("malformed sysfs") }),
		"nothing": fnCollector(func(chan<- prometheus.Metric) error { return ErrNoData }),
	})
	mfs := testutil.Gather(t, s)
	success := map[string]float64{}
	var sawOK bool
	for _, mf := range mfs {
		switch mf.GetName() {
		case "smokemon_scrape_collector_success":
			for _, m := range mf.Metric {
				success[m.Label[0].GetValue()] = m.GetGauge().GetValue()
			}
		case "smokemon_test_ok":
			sawOK = true
		}
	}
	want := map[string]float64{"good": 1, "failing": 0, "panicky": 0, "nothing": 1}
	for k, v := range want {
		if success[k] != v {
			t.Errorf("collector_success{collector=%q} = %v, want %v", k, success[k], v)
		}
	}
	if !sawOK {
		t.Error("the good collector's metric is missing")
	}
}

func TestEnabledHonoursDisableDefaults(t *testing.T) {
	defer func(d bool, e map[string]bool) { *disableDefault, explicitlySet = d, e }(*disableDefault, explicitlySet)
	*disableDefault = true
	explicitlySet = map[string]bool{"cpu": true}
	if got := Enabled(); len(got) != 1 || got[0] != "cpu" {
		t.Errorf("Enabled() = %v, want [cpu]", got)
	}
	*disableDefault = false
	explicitlySet = map[string]bool{}
	if got := Enabled(); len(got) < 10 {
		t.Errorf("Enabled() = %v, want every default collector", got)
	}
}
