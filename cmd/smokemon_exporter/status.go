package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/status"
)

// /status is fed from what the collectors already export, never from the
// probe path: every statusEvery the ping collector's stream is read and the
// mtr collector gathered on their own (their counters and histograms, as a
// scrape reads them), and the host figures come with every /metrics scrape,
// every /status request, and a gather of their own when neither happened
// for hostEvery.
const (
	statusEvery = 10 * time.Second
	hostEvery   = 30 * time.Second
)

type statusFeed struct {
	logger *slog.Logger
	st     *status.Status
	ping   collector.Streamer  // nil without the ping collector
	mtr    prometheus.Gatherer // the mtr collector only
	hosts  prometheus.Gatherer // the host collectors only

	mu          sync.Mutex
	order       map[string]int // ping target name → position in the config
	lastTargets int            // in the last sample: the next one's size
	lastHost    time.Time
}

// updater runs one collector of the set as a prometheus.Collector.
type updater struct{ c collector.Collector }

func (u updater) Describe(chan<- *prometheus.Desc) {}
func (u updater) Collect(ch chan<- prometheus.Metric) {
	// A panic costs this sample, not the process (the set's scrapes recover
	// the same way); an error leaves out what the collector could not say,
	// and /metrics reports both.
	defer func() { recover() }()
	u.c.Update(ch)
}

func newStatusFeed(logger *slog.Logger, set *collector.Set, hosts prometheus.Gatherer, cfg *config.Config) *statusFeed {
	mtr := prometheus.NewRegistry()
	if c := set.Collector("mtr"); c != nil {
		mtr.MustRegister(updater{c})
	}
	ping, _ := set.Collector("ping").(collector.Streamer)
	f := &statusFeed{logger: logger, st: status.New(""), ping: ping, mtr: mtr, hosts: hosts}
	f.configure(cfg)
	return f
}

// configure takes the node name and the target order from a config in force.
func (f *statusFeed) configure(cfg *config.Config) {
	node := cfg.Global.NodeName
	if node == "" {
		node, _ = os.Hostname()
	}
	order := map[string]int{}
	for i, t := range cfg.Ping.Targets {
		order[t.Name] = i
	}
	f.mu.Lock()
	f.order = order
	f.mu.Unlock()
	f.st.SetNode(node)
}

// reloaded records a reload's outcome among the events.
func (f *statusFeed) reloaded(cfg *config.Config, err error) {
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		f.st.AddEvent(status.Event{Time: time.Now(), Kind: status.EventReloadFailed, Text: "reload failed, old configuration kept: " + msg})
		return
	}
	f.configure(cfg)
	f.st.AddEvent(status.Event{Time: time.Now(), Kind: status.EventReload,
		Text: "configuration reloaded: " + strconv.Itoa(len(cfg.Ping.Targets)) + " ping targets"})
}

func (f *statusFeed) run(stop <-chan struct{}) {
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		begin := heapAllocated()
		scrapeGOGC.enter()
		f.sampleProbes()
		f.mu.Lock()
		stale := time.Since(f.lastHost) >= hostEvery
		f.mu.Unlock()
		if stale {
			f.sampleHost()
		}
		scrapeGOGC.leave()
		// A sample's garbage is a scrape's (the gathered families): hand it
		// back as scrapeGC does, or it would set the resident heap.
		if heapAllocated()-begin > scrapeGCThreshold {
			debug.FreeOSMemory()
		}
		select {
		case <-tick.C:
		case <-stop:
			return
		}
	}
}

func (f *statusFeed) sampleProbes() {
	// The ping figures are read from its stream, a chunk at a time: a
	// gather of 10 000 targets would cost the memory the stream saves.
	ps := newPingSamples(f.lastTargets)
	if f.ping != nil {
		if err := f.ping.Stream(ps.add); err != nil {
			f.logger.Debug("status: reading ping", "err", err)
		}
	}
	mfs, err := f.mtr.Gather()
	if err != nil {
		f.logger.Debug("status: gathering mtr", "err", err)
	}
	now := time.Now()
	f.mu.Lock()
	order := f.order
	f.mu.Unlock()
	targets := ps.out
	f.lastTargets = len(targets)
	slices.SortStableFunc(targets, func(a, b status.TargetSample) int {
		if d := order[a.Name] - order[b.Name]; d != 0 {
			return d
		}
		return strings.Compare(a.Family, b.Family)
	})
	f.st.ObservePing(now, targets)
	f.st.ObservePaths(now, pathSamples(byName(mfs)))
}

func (f *statusFeed) sampleHost() {
	mfs, err := f.hosts.Gather()
	if err != nil {
		f.logger.Debug("status: gathering host figures", "err", err)
	}
	f.observeHost(mfs)
}

func (f *statusFeed) observeHost(mfs []*dto.MetricFamily) {
	now := time.Now()
	f.mu.Lock()
	f.lastHost = now
	f.mu.Unlock()
	f.st.ObserveHost(now, hostSample(byName(mfs)))
}

// tee hands every scrape's families to the status on their way out.
func (f *statusFeed) tee(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		f.observeHost(mfs)
		return mfs, err
	})
}

// handler serves /status. A request takes fresh host figures unless a
// scrape or request did within the last few seconds: a few open pages
// refreshing do not each cost a gather.
func (f *statusFeed) handler() *status.Handler {
	return &status.Handler{Status: f.st, Refresh: statusEvery, Before: func() {
		f.mu.Lock()
		fresh := time.Since(f.lastHost) < 5*time.Second
		f.mu.Unlock()
		if !fresh {
			f.sampleHost()
		}
	}}
}

type families map[string]*dto.MetricFamily

func byName(mfs []*dto.MetricFamily) families {
	m := make(families, len(mfs))
	for _, mf := range mfs {
		m[mf.GetName()] = mf
	}
	return m
}

func labelOf(m *dto.Metric, name string) string {
	for _, p := range m.GetLabel() {
		if p.GetName() == name {
			return p.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return math.NaN()
}

// each calls fn for every sample of a family.
func (fs families) each(name string, fn func(m *dto.Metric)) {
	if mf := fs[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			fn(m)
		}
	}
}

// sum adds up a family's samples whose label matches (any when label is ""); NaN without any.
func (fs families) sum(name, label string, match func(string) bool) float64 {
	v, seen := 0.0, false
	fs.each(name, func(m *dto.Metric) {
		if label == "" || match(labelOf(m, label)) {
			v, seen = v+value(m), true
		}
	})
	if !seen {
		return math.NaN()
	}
	return v
}

// perTarget gathers one T per target and family, in the order first seen.
type perTarget[T any] struct {
	idx map[[2]string]int
	out []T
	mk  func(name, family string) T
}

// newPerTarget expects about n targets.
func newPerTarget[T any](n int, mk func(name, family string) T) *perTarget[T] {
	return &perTarget[T]{idx: make(map[[2]string]int, n), out: make([]T, 0, n), mk: mk}
}

// get is the T of a sample's target; valid until the next get.
func (p *perTarget[T]) get(m *dto.Metric) *T {
	k := [2]string{labelOf(m, "target"), labelOf(m, "family")}
	i, ok := p.idx[k]
	if !ok {
		i = len(p.out)
		p.idx[k] = i
		p.out = append(p.out, p.mk(k[0], k[1]))
	}
	return &p.out[i]
}

// pingSamples collects the status figures from the ping stream's chunks.
// The targets' bucket counts share arenas of a chunk's worth of targets.
type pingSamples struct {
	*perTarget[status.TargetSample]
	arena []uint16
}

func newPingSamples(n int) *pingSamples {
	return &pingSamples{perTarget: newPerTarget(n, func(name, family string) status.TargetSample {
		return status.TargetSample{Name: name, Family: family}
	})}
}

func (p *pingSamples) add(mf *dto.MetricFamily) error {
	for _, m := range mf.GetMetric() {
		switch mf.GetName() {
		case "smokemon_ping_target_up":
			p.get(m).Probed = value(m) == 1
		case "smokemon_ping_sent_total":
			p.get(m).Sent = uint64(value(m))
		case "smokemon_ping_lost_total":
			p.get(m).Lost = uint64(value(m))
		case "smokemon_ping_rtt_seconds":
			h := m.GetHistogram()
			n := len(statusBounds)
			if h.Schema == nil {
				n = len(h.GetBucket()) + 1
			}
			if cap(p.arena)-len(p.arena) < n {
				p.arena = make([]uint16, 0, n*collector.ChunkSize)
			}
			counts := p.arena[len(p.arena) : len(p.arena)+n]
			p.arena = p.arena[:len(p.arena)+n]
			t := p.get(m)
			t.Bounds, t.Total = statusBuckets(h, counts), h.GetSampleCount()
			t.Counts = counts
		}
	}
	return nil
}

// The status ring keeps RTTs in the buckets of a schema-2 native histogram
// (4 per doubling, 19% apart) from 2^-16 s (15 µs) to 2^4 s (16 s): four
// times finer than the classic 1-2-5 buckets, in 81 buckets of 2 bytes.
const statusSchema, statusMinKey, statusMaxKey = 2, -16 << statusSchema, 4 << statusSchema

var statusBounds = func() []float64 {
	b := make([]float64, 0, statusMaxKey-statusMinKey+1)
	for k := statusMinKey; k <= statusMaxKey; k++ {
		b = append(b, math.Exp2(float64(k)/(1<<statusSchema)))
	}
	return b
}()

// statusBuckets regroups a histogram's native buckets into statusBounds
// (values beyond either end go to the end buckets), counted into counts
// (len(statusBounds) of them, zeroed) modulo 2^16, and returns the bounds.
// Without native buckets it passes the classic ones through, into counts
// of one more than the classic buckets, +Inf last.
func statusBuckets(h *dto.Histogram, counts []uint16) []float64 {
	if h.Schema == nil {
		bounds := make([]float64, 0, len(h.GetBucket())+1)
		var prev uint64
		for i, b := range h.GetBucket() {
			bounds, counts[i] = append(bounds, b.GetUpperBound()), uint16(b.GetCumulativeCount()-prev)
			prev = b.GetCumulativeCount()
		}
		counts[len(counts)-1] = uint16(h.GetSampleCount() - prev)
		return append(bounds, math.Inf(1))
	}
	clear(counts)
	counts[0] = uint16(h.GetZeroCount())
	s := int(h.GetSchema())
	var key int
	var n int64
	deltas := h.GetPositiveDelta()
	for si, span := range h.GetPositiveSpan() {
		if si == 0 {
			key = int(span.GetOffset())
		} else {
			key += int(span.GetOffset())
		}
		for range span.GetLength() {
			if len(deltas) == 0 {
				break
			}
			n += deltas[0]
			deltas = deltas[1:]
			// Bucket key at schema s ends at 2^(key/2^s): in the status
			// schema that is the bucket whose end is the first at or above it.
			var g int
			if s >= statusSchema {
				g = -((-key) >> (s - statusSchema)) // ceil(key / 2^(s-2))
			} else {
				g = key << (statusSchema - s)
			}
			counts[min(max(g, statusMinKey), statusMaxKey)-statusMinKey] += uint16(max(n, 0))
			key++
		}
	}
	return statusBounds
}

func pathSamples(fs families) []status.PathSample {
	pt := newPerTarget(0, func(name, family string) status.PathSample {
		return status.PathSample{Name: name, Family: family}
	})
	get := pt.get
	hop := func(m *dto.Metric) *status.HopSample {
		p := get(m)
		k, err := strconv.Atoi(labelOf(m, "hop"))
		if err != nil || k < 1 || k > 255 {
			return &status.HopSample{} // not a hop: written to and dropped
		}
		for len(p.Hops) < k {
			p.Hops = append(p.Hops, status.HopSample{})
		}
		return &p.Hops[k-1]
	}
	fs.each("smokemon_mtr_hops", func(m *dto.Metric) { get(m) })
	fs.each("smokemon_mtr_destination_reached", func(m *dto.Metric) { get(m).Reached = value(m) == 1 })
	fs.each("smokemon_mtr_path_changes_total", func(m *dto.Metric) { get(m).Changes = uint64(value(m)) })
	fs.each("smokemon_mtr_hop_sent_total", func(m *dto.Metric) { hop(m).Sent = uint64(value(m)) })
	fs.each("smokemon_mtr_hop_received_total", func(m *dto.Metric) { hop(m).Received = uint64(value(m)) })
	fs.each("smokemon_mtr_hop_info", func(m *dto.Metric) { hop(m).Addr = labelOf(m, "ip") })
	return pt.out
}

func hostSample(fs families) status.HostSample {
	h := status.NoHost()
	every := func(string) bool { return true }
	is := func(vs ...string) func(string) bool { return func(v string) bool { return slices.Contains(vs, v) } }
	h.CPUTotal = fs.sum("smokemon_cpu_seconds_total", "mode", every)
	h.CPUBusy = h.CPUTotal - fs.sum("smokemon_cpu_seconds_total", "mode", is("idle", "iowait"))
	h.MemAvailable = fs.sum("smokemon_memory_available_bytes", "", nil)
	h.MemTotal = fs.sum("smokemon_memory_total_bytes", "", nil)
	h.PSICPU = fs.sum("smokemon_pressure_cpu_waiting_seconds_total", "", nil)
	h.PSIMem = fs.sum("smokemon_pressure_memory_waiting_seconds_total", "", nil)
	h.PSIIO = fs.sum("smokemon_pressure_io_waiting_seconds_total", "", nil)
	hot := ""
	fs.each("smokemon_thermal_zone_temperature_celsius", func(m *dto.Metric) {
		if v := value(m); math.IsNaN(h.TempC) || v > h.TempC {
			h.TempC, hot = v, labelOf(m, "zone")
		}
	})
	fs.each("smokemon_thermal_zone_trip_point_celsius", func(m *dto.Metric) {
		if labelOf(m, "zone") == hot && labelOf(m, "trip_type") == "passive" && !(value(m) >= h.TripC) {
			h.TripC = value(m)
		}
	})
	fs.each("smokemon_rpi_throttle_condition", func(m *dto.Metric) {
		if labelOf(m, "when") != "now" {
			return
		}
		switch labelOf(m, "condition") {
		case "throttled", "soft_temp_limit":
			h.Throttled = math.Max(value(m), zeroIfNaN(h.Throttled))
		case "under_voltage":
			h.UnderVoltage = value(m)
		}
	})
	h.CoreThrottles = fs.sum("smokemon_cpu_core_throttles_total", "", nil)
	fs.each("smokemon_wifi_signal_dbm", func(m *dto.Metric) {
		if h.WifiIface == "" {
			h.WifiIface, h.WifiSignal = labelOf(m, "interface"), value(m)
		}
	})
	h.WifiRoams = fs.sum("smokemon_wifi_roams_total", "", nil)
	h.Conntrack = fs.sum("smokemon_netstat_conntrack_entries", "", nil)
	h.ConntrackMax = fs.sum("smokemon_netstat_conntrack_entries_limit", "", nil)
	return h
}

func zeroIfNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
