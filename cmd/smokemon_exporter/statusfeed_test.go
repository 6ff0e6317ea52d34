package main

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/internal/status"
)

// Native buckets land in the status bucket that holds their values at the
// ping collector's schema (4), and nothing is lost at a coarser one.
func TestStatusBuckets(t *testing.T) {
	for _, factor := range []float64{1.05, 1.5} {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: []float64{0.001, 0.01},
			NativeHistogramBucketFactor: factor})
		values := []float64{30e-6, 31e-6, 0.0012, 0.0125, 0.0125, 0.3, 1e-9, 100}
		for _, v := range values {
			h.Observe(v)
		}
		var m dto.Metric
		h.Write(&m)
		counts := make([]uint16, len(statusBounds))
		bounds := statusBuckets(m.GetHistogram(), counts)
		want := make([]uint16, len(bounds))
		for _, v := range values {
			i := 0
			for i < len(bounds)-1 && bounds[i] < v {
				i++
			}
			want[i]++
		}
		for i := range want {
			if counts[i] != want[i] && factor == 1.05 {
				t.Errorf("schema %d: bucket ≤%g holds %d, want %d", m.GetHistogram().GetSchema(), bounds[i], counts[i], want[i])
			}
		}
		var total uint64
		for _, c := range counts {
			total += uint64(c)
		}
		if total != uint64(len(values)) {
			t.Errorf("factor %v: %d observations regrouped, want %d", factor, total, len(values))
		}
	}
	// Classic buckets only: passed through, with +Inf.
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: []float64{0.001, 0.01}})
	h.Observe(0.005)
	h.Observe(5)
	var m dto.Metric
	h.Write(&m)
	counts := make([]uint16, 3)
	bounds := statusBuckets(m.GetHistogram(), counts)
	if len(bounds) != 3 || !math.IsInf(bounds[2], 1) || counts[0] != 0 || counts[1] != 1 || counts[2] != 1 {
		t.Errorf("classic: %v %v", bounds, counts)
	}
}

// The host figures are read from the families the host collectors export.
func TestHostSample(t *testing.T) {
	reg := prometheus.NewRegistry()
	gauge := func(name string, v float64, labels ...string) {
		var names, values []string
		for i := 0; i+1 < len(labels); i += 2 {
			names, values = append(names, labels[i]), append(values, labels[i+1])
		}
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name}, names)
		if err := reg.Register(g); err != nil {
			g = err.(prometheus.AlreadyRegisteredError).ExistingCollector.(*prometheus.GaugeVec)
		}
		g.WithLabelValues(values...).Set(v)
	}
	gauge("smokemon_cpu_seconds_total", 70, "mode", "idle")
	gauge("smokemon_cpu_seconds_total", 10, "mode", "iowait")
	gauge("smokemon_cpu_seconds_total", 20, "mode", "user")
	gauge("smokemon_memory_available_bytes", 1e9)
	gauge("smokemon_memory_total_bytes", 4e9)
	gauge("smokemon_thermal_zone_temperature_celsius", 50, "zone", "0", "type", "a")
	gauge("smokemon_thermal_zone_temperature_celsius", 70, "zone", "1", "type", "b")
	gauge("smokemon_thermal_zone_trip_point_celsius", 90, "zone", "1", "trip", "0", "trip_type", "passive", "type", "b")
	gauge("smokemon_thermal_zone_trip_point_celsius", 60, "zone", "0", "trip", "0", "trip_type", "passive", "type", "a")
	gauge("smokemon_rpi_throttle_condition", 1, "condition", "under_voltage", "when", "now")
	gauge("smokemon_rpi_throttle_condition", 1, "condition", "throttled", "when", "since_boot")
	gauge("smokemon_wifi_signal_dbm", -70, "interface", "wlan0")
	gauge("smokemon_netstat_conntrack_entries", 10)
	gauge("smokemon_netstat_conntrack_entries_limit", 100)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	h := hostSample(byName(mfs))
	if h.CPUTotal != 100 || h.CPUBusy != 20 || h.MemAvailable != 1e9 || h.TempC != 70 || h.TripC != 90 ||
		h.UnderVoltage != 1 || !math.IsNaN(h.Throttled) || h.WifiIface != "wlan0" || h.WifiSignal != -70 || h.Conntrack != 10 ||
		!math.IsNaN(h.PSICPU) || !math.IsNaN(h.WifiRoams) {
		t.Errorf("%+v", h)
	}
}

// BenchmarkStatusSample is the status feed's work every statusEvery for n
// targets: gather ping-like families (client_golang's histograms, heavier
// than the ping collector's own), regroup them and fold them in.
func BenchmarkStatusSample(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			lv := []string{"target", "family"}
			sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smokemon_ping_sent_total"}, lv)
			lost := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smokemon_ping_lost_total"}, lv)
			up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "smokemon_ping_target_up"}, lv)
			rtt := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "smokemon_ping_rtt_seconds",
				Buckets: prometheus.ExponentialBuckets(20e-6, 2.5, 19), NativeHistogramBucketFactor: 1.05}, lv)
			reg.MustRegister(sent, lost, up, rtt)
			for i := range n {
				l := []string{"t" + strconv.Itoa(i), "ip4"}
				sent.WithLabelValues(l...).Add(1000)
				lost.WithLabelValues(l...).Add(3)
				up.WithLabelValues(l...).Set(1)
				for j := range 50 {
					rtt.WithLabelValues(l...).Observe(float64(20+(i+j)%60) * 1e-6)
				}
			}
			st := status.New("bench")
			now := time.Unix(1e9, 0)
			b.ReportAllocs()
			for b.Loop() {
				mfs, _ := reg.Gather()
				now = now.Add(statusEvery)
				ps := newPingSamples(n)
				for _, mf := range mfs {
					ps.add(mf)
				}
				st.ObservePing(now, ps.out)
			}
		})
	}
}

type panicky struct{}

func (panicky) Update(chan<- prometheus.Metric) error { panic("odd hardware") }

// A collector that panics while the status samples it costs the sample only.
func TestUpdaterRecovers(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(updater{panicky{}})
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}
