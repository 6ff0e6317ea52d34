package probes

import (
	"cmp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smokemon/smokemon/collector"
)

// family is a streamed metric family: what a Desc says, kept where a
// chunk's label pairs can point into it.
type family struct {
	name, help string
	typ        dto.MetricType
	labels     []string
	order      []int // label positions in name order: label pairs go sorted
	desc       *prometheus.Desc
}

func newFamily(name, help string, typ dto.MetricType, labels ...string) *family {
	f := &family{name: name, help: help, typ: typ, labels: labels}
	f.order = make([]int, len(labels))
	for i := range f.order {
		f.order[i] = i
	}
	slices.SortFunc(f.order, func(a, b int) int { return cmp.Compare(labels[a], labels[b]) })
	f.desc = prometheus.NewDesc(name, help, labels, nil)
	return f
}

// chunker builds a streamed family's chunks of collector.ChunkSize metrics
// in objects reused from chunk to chunk, and hands each to emit when full.
// After emit's first error it builds nothing more.
type chunker struct {
	emit  func(*dto.MetricFamily) error
	err   error
	fam   *family
	mf    dto.MetricFamily
	slots []slot
	ptrs  []*dto.Metric
	n     int
}

// slot is one metric of a chunk and everything it points to.
type slot struct {
	m       dto.Metric
	values  []string
	pairs   []dto.LabelPair
	ptrs    []*dto.LabelPair
	v       float64
	gauge   dto.Gauge
	counter dto.Counter
	hist    *histScratch // made for the first histogram in the slot: only histChunkSize slots ever hold one
}

// chunkers are kept for the next stream: their slots are a few hundred kB.
var chunkers sync.Pool

func getChunker(emit func(*dto.MetricFamily) error) *chunker {
	c, _ := chunkers.Get().(*chunker)
	if c == nil {
		c = &chunker{slots: make([]slot, collector.ChunkSize), ptrs: make([]*dto.Metric, collector.ChunkSize)}
	}
	c.emit, c.err, c.fam, c.n = emit, nil, nil, 0
	return c
}

func putChunker(c *chunker) {
	c.emit, c.fam = nil, nil
	chunkers.Put(c)
}

// begin ends the family being built and starts f.
func (c *chunker) begin(f *family) {
	c.flush()
	c.fam = f
	c.mf.Name, c.mf.Help, c.mf.Type = &f.name, &f.help, &f.typ
}

// histChunkSize is the most histograms in one chunk. A histogram is some
// 25 series, so a chunk of 256 was 0.5 MB of text, which the /metrics
// handler grows a buffer to hold (1.7 MB of garbage a scrape of 300 mesh
// peers), and 256 bucket scratches the pooled chunker kept (0.6 MB).
const histChunkSize = 32

// next is the next metric of the family, labelled with lv (the values of
// the family's labels, in their order), its value left to the caller.
func (c *chunker) next(lv ...string) *slot {
	if c.n == len(c.slots) || c.n == histChunkSize && c.fam.typ == dto.MetricType_HISTOGRAM {
		c.flush()
	}
	s := &c.slots[c.n]
	c.ptrs[c.n] = &s.m
	c.n++
	f := c.fam
	// Grown, never shrunk: families of fewer labels follow families of
	// more (mesh's alternate 1, 2 and 3 before the custom ones).
	if cap(s.values) < len(lv) {
		s.values = make([]string, len(lv))
		s.pairs = make([]dto.LabelPair, len(lv))
		s.ptrs = make([]*dto.LabelPair, len(lv))
	}
	s.values, s.pairs, s.ptrs = s.values[:len(lv)], s.pairs[:len(lv)], s.ptrs[:len(lv)]
	copy(s.values, lv)
	for j, i := range f.order {
		s.pairs[j].Name, s.pairs[j].Value = &f.labels[i], &s.values[i]
		s.ptrs[j] = &s.pairs[j]
	}
	s.m.Label = s.ptrs
	s.m.Gauge, s.m.Counter, s.m.Histogram = nil, nil, nil
	return s
}

func (c *chunker) gauge(v float64, lv ...string) {
	s := c.next(lv...)
	s.v = v
	s.gauge.Value = &s.v
	s.m.Gauge = &s.gauge
}

func (c *chunker) counter(v float64, lv ...string) {
	s := c.next(lv...)
	s.v = v
	s.counter.Value = &s.v
	s.m.Counter = &s.counter
}

func (c *chunker) histogram(h *rttHistogram, lv ...string) {
	s := c.next(lv...)
	if s.hist == nil {
		s.hist = new(histScratch)
	}
	h.fill(&s.m, s.hist)
}

// flush emits the metrics built since the last flush.
func (c *chunker) flush() {
	if c.n == 0 {
		return
	}
	if c.err == nil {
		c.mf.Metric = c.ptrs[:c.n]
		c.err = c.emit(&c.mf)
	}
	c.n = 0
}

// end emits what is left and reports emit's first error.
func (c *chunker) end() error {
	c.flush()
	return c.err
}
