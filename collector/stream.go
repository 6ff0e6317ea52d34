package collector

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// A gather builds every sample of a scrape as client_model objects, all
// live until the last is encoded: at 10 000 ping targets 50–66 MB, three
// times what the targets' own state takes. A Streamer's samples are instead
// built a chunk at a time, in objects the streamer reuses, and each chunk is
// encoded before the next is built, so a scrape holds one chunk.

// ChunkSize is the most metrics a Streamer puts in one chunk.
const ChunkSize = 256

// Streamer is a collector whose series are too many to gather at once.
type Streamer interface {
	Collector
	// Stream sends every family of the collector on emit, each as one or
	// more chunks of at most ChunkSize metrics, a family's chunks one after
	// another. A chunk is emit's only until emit returns: the streamer
	// reuses it. Stream stops at emit's first error and returns it.
	Stream(emit func(*dto.MetricFamily) error) error
}

// streamed is how a streamer's last stream went, for the scrape metrics.
type streamed struct {
	duration time.Duration
	err      error
}

// Stream runs every streamer of the set, in name order, and keeps how each
// fared for the streaming view (Streaming) to report. It returns emit's
// first error (a client gone away); a streamer's own error fails only it.
func (s *Set) Stream(emit func(*dto.MetricFamily) error) error {
	var names []string
	for n, c := range s.collectors {
		if _, ok := c.(Streamer); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		var emitErr error
		begin := time.Now()
		err := safeStream(s.collectors[n].(Streamer), func(mf *dto.MetricFamily) error {
			if err := emit(mf); err != nil {
				emitErr = err
				return err
			}
			return nil
		})
		if emitErr != nil {
			return emitErr
		}
		s.streamMu.Lock()
		if s.streamed == nil {
			s.streamed = map[string]streamed{}
		}
		s.streamed[n] = streamed{time.Since(begin), err}
		s.streamMu.Unlock()
	}
	return nil
}

func safeStream(c Streamer, emit func(*dto.MetricFamily) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Stream(emit)
}

// Streaming is the set as a scrape that also calls Stream sees it: every
// collector but the streamers, and for each streamer the duration and
// success of the last Stream. Collect on the set itself runs the streamers'
// Update instead, for gatherers that want everything in one go.
func (s *Set) Streaming() prometheus.Collector {
	return view{s, func(_ string, c Collector) bool { _, ok := c.(Streamer); return !ok }, true}
}

// Hosts is the set's host collectors alone: what /status reads of the
// host, without gathering every probe target to get it.
func (s *Set) Hosts() prometheus.Collector {
	return view{s, func(name string, _ Collector) bool { return factories[name].host }, false}
}

// view runs the collectors of a set that run says to.
type view struct {
	s        *Set
	run      func(name string, c Collector) bool
	streamed bool // report the streamers' last Stream
}

func (v view) Describe(chan<- *prometheus.Desc) {}

func (v view) Collect(ch chan<- prometheus.Metric) {
	s := v.s
	s.collect(ch, v.run)
	if !v.streamed {
		return
	}
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	for name, r := range s.streamed {
		s.report(ch, name, r.duration, r.err)
	}
}

// StreamUpdate is a Streamer's Update: its stream as constant metrics, for
// gatherers (tests, the set's own Collect). desc gives each family's Desc.
func StreamUpdate(c Streamer, desc func(family string) *prometheus.Desc, ch chan<- prometheus.Metric) error {
	return c.Stream(func(mf *dto.MetricFamily) error {
		d := desc(mf.GetName())
		if d == nil {
			return fmt.Errorf("no Desc for streamed family %s", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			ch <- clonedMetric{d, proto.Clone(m).(*dto.Metric)}
		}
		return nil
	})
}

type clonedMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (c clonedMetric) Desc() *prometheus.Desc { return c.desc }

func (c clonedMetric) Write(out *dto.Metric) error {
	out.Label, out.Gauge, out.Counter, out.Histogram = c.m.Label, c.m.Gauge, c.m.Counter, c.m.Histogram
	out.Summary, out.Untyped, out.TimestampMs = c.m.Summary, c.m.Untyped, c.m.TimestampMs
	return nil
}
