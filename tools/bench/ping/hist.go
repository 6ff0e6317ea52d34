package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// protoAccept asks for delimited protobuf: the only exposition format that
// carries native histogram buckets.
const protoAccept = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`

// nativeHist is a sparse exponential histogram with bucket counts by index,
// so histograms of different series and scrapes can be merged and subtracted.
type nativeHist struct {
	schema  int32
	zero    float64
	buckets map[int]float64
}

func (h *nativeHist) total() float64 {
	t := h.zero
	for _, c := range h.buckets {
		t += c
	}
	return t
}

// downscale merges pairs of buckets until the schema is s; two histograms
// can only be added or subtracted at the same resolution.
func (h *nativeHist) downscale(s int32) {
	for h.schema > s {
		nb := make(map[int]float64, len(h.buckets))
		for i, c := range h.buckets {
			nb[(i+1)>>1] += c // bucket k at schema-1 covers buckets 2k-1 and 2k
		}
		h.buckets = nb
		h.schema--
	}
}

// add adds (sign=+1) or subtracts (sign=-1) o into h.
func (h *nativeHist) add(o *nativeHist, sign float64) {
	if h.buckets == nil {
		*h = nativeHist{schema: o.schema, buckets: map[int]float64{}}
	}
	oc := &nativeHist{schema: o.schema, zero: o.zero, buckets: o.buckets}
	if oc.schema > h.schema {
		oc = &nativeHist{schema: o.schema, zero: o.zero, buckets: copyMap(o.buckets)}
		oc.downscale(h.schema)
	} else if oc.schema < h.schema {
		h.downscale(oc.schema)
	}
	h.zero += sign * oc.zero
	for i, c := range oc.buckets {
		h.buckets[i] += sign * c
	}
}

func copyMap(m map[int]float64) map[int]float64 {
	c := make(map[int]float64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// bounds returns bucket i's (lower, upper] at schema s: upper = 2^(i·2^-s).
func bounds(s int32, i int) (float64, float64) {
	w := math.Exp2(-float64(s))
	return math.Exp2(float64(i-1) * w), math.Exp2(float64(i) * w)
}

// quantile interpolates exponentially inside the bucket, as Prometheus does
// for native histograms; the answer is exact to the bucket's width.
func (h *nativeHist) quantile(q float64) (v, lo, hi float64, ok bool) {
	total := h.total()
	if total <= 0 {
		return 0, 0, 0, false
	}
	rank := q * total
	if rank <= h.zero {
		return 0, 0, 0, true
	}
	cum := h.zero
	idx := make([]int, 0, len(h.buckets))
	for i, c := range h.buckets {
		if c > 0 {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	for _, i := range idx {
		c := h.buckets[i]
		if cum+c >= rank {
			lo, hi := bounds(h.schema, i)
			f := (rank - cum) / c
			return lo * math.Pow(hi/lo, f), lo, hi, true
		}
		cum += c
	}
	lo, hi = bounds(h.schema, idx[len(idx)-1])
	return hi, lo, hi, true
}

func decodeNative(h *dto.Histogram) *nativeHist {
	n := &nativeHist{schema: h.GetSchema(), zero: float64(h.GetZeroCount()), buckets: map[int]float64{}}
	if h.GetZeroCountFloat() > 0 {
		n.zero = h.GetZeroCountFloat()
	}
	// The first span's offset is the absolute index, later ones are gaps;
	// counts are deltas to the previous bucket (or absolute floats).
	idx, k, cnt := 0, 0, int64(0)
	for si, sp := range h.GetPositiveSpan() {
		if si == 0 {
			idx = int(sp.GetOffset())
		} else {
			idx += int(sp.GetOffset())
		}
		for range sp.GetLength() {
			switch {
			case k < len(h.GetPositiveDelta()):
				cnt += h.GetPositiveDelta()[k]
				n.buckets[idx] = float64(cnt)
			case k < len(h.GetPositiveCount()):
				n.buckets[idx] = h.GetPositiveCount()[k]
			}
			k++
			idx++
		}
	}
	return n
}

func isNative(h *dto.Histogram) bool {
	return h.GetZeroThreshold() > 0 || len(h.GetPositiveSpan()) > 0 || len(h.GetNegativeSpan()) > 0 || h.GetSchema() != 0
}

// histSnap is one scrape of one histogram family, summed over all series.
type histSnap struct {
	native   *nativeHist // nil when any series lacks native buckets
	classic  map[float64]float64
	count    float64
	sum      float64
	nSeries  int
	allNativ bool
	sent     float64 // echo requests sent, summed over the tool's targets; -1: it has no such counter
}

func snapFromFamily(mf *dto.MetricFamily) *histSnap {
	s := &histSnap{classic: map[float64]float64{}, allNativ: true}
	agg := &nativeHist{}
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		s.nSeries++
		s.count += float64(h.GetSampleCount())
		s.sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			s.classic[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
		if isNative(h) {
			agg.add(decodeNative(h), 1)
		} else {
			s.allNativ = false
		}
	}
	s.classic[math.Inf(1)] = s.count
	if s.allNativ && s.nSeries > 0 {
		s.native = agg
	}
	return s
}

// sub returns the observations made between before and s; a nil before
// means "since start".
func (s *histSnap) sub(before *histSnap) *histSnap {
	if before == nil {
		return s
	}
	d := &histSnap{classic: map[float64]float64{}, count: s.count - before.count, sum: s.sum - before.sum,
		nSeries: s.nSeries, allNativ: s.allNativ && before.allNativ, sent: -1}
	if s.sent >= 0 && before.sent >= 0 {
		d.sent = s.sent - before.sent
	}
	for ub, c := range s.classic {
		d.classic[ub] = c - before.classic[ub]
	}
	if d.allNativ && s.native != nil && before.native != nil {
		n := &nativeHist{schema: s.native.schema, zero: s.native.zero, buckets: copyMap(s.native.buckets)}
		n.add(before.native, -1)
		d.native = n
	}
	return d
}

// classicQuantile is histogram_quantile(): linear inside a bucket, the first
// bucket starting at 0. With coarse buckets it says little about small RTTs.
func (s *histSnap) classicQuantile(q float64) (v, lo, hi float64, ok bool) {
	if s.count <= 0 {
		return 0, 0, 0, false
	}
	ubs := make([]float64, 0, len(s.classic))
	for ub := range s.classic {
		ubs = append(ubs, ub)
	}
	sort.Float64s(ubs)
	rank := q * s.count
	prevUB, prevC := 0.0, 0.0
	for _, ub := range ubs {
		c := s.classic[ub]
		if c >= rank {
			if math.IsInf(ub, 1) {
				return prevUB, prevUB, ub, true
			}
			if c == prevC {
				return ub, prevUB, ub, true
			}
			return prevUB + (ub-prevUB)*(rank-prevC)/(c-prevC), prevUB, ub, true
		}
		prevUB, prevC = ub, c
	}
	return prevUB, prevUB, math.Inf(1), true
}

// scrapeHist fetches /metrics as protobuf and returns the named family.
func scrapeHist(c *http.Client, url, family string) (*histSnap, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", protoAccept)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	var snap *histSnap
	sent := -1.0
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding %s (%s): %w", url, resp.Header.Get("Content-Type"), err)
		}
		switch mf.GetName() {
		case family:
			if !strings.Contains(resp.Header.Get("Content-Type"), "protobuf") {
				return nil, fmt.Errorf("%s answered %q, not protobuf", url, resp.Header.Get("Content-Type"))
			}
			snap = snapFromFamily(&mf)
		case sentFamily[family]:
			sent = 0
			for _, m := range mf.GetMetric() {
				sent += m.GetCounter().GetValue()
			}
		}
	}
	if snap == nil {
		return nil, fmt.Errorf("%s: no metric family %s", url, family)
	}
	snap.sent = sent
	return snap, nil
}

// sentFamily is the counter of echo requests sent beside each RTT family.
var sentFamily = map[string]string{
	smokemonFamily:  "smokemon_ping_sent_total",
	smokepingFamily: "smokeping_requests_total",
}
