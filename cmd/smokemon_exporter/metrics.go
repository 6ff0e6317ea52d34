package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/lograte"
)

// promhttp encodes what a gather returns, and a gather holds every sample
// of the scrape at once: at 10 000 ping targets that was 50–66 MB of
// client_model objects, and the exporter's peak memory. This handler writes
// the set's streamed families (collector.Streamer) a chunk at a time as the
// streamers build them, then the gathered rest, and otherwise answers as
// promhttp.HandlerFor with EnableOpenMetrics and ContinueOnError does: the
// same formats, gzip, the name[] filter, the in-flight limit and error log.
type metricsHandler struct {
	set      *collector.Set
	gatherer prometheus.Gatherer // everything but the streamed families
	errorLog lograte.ScrapeErrorLog
	inflight chan struct{} // nil: no limit
}

// The formats promhttp offers with OpenMetrics enabled, less the two debug
// renderings of the protobuf (text and compact), whose families cannot be
// written in parts.
var metricsFormats = []expfmt.Format{expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtProtoDelim, expfmt.FmtText}

func newMetricsHandler(set *collector.Set, g prometheus.Gatherer, errorLog lograte.ScrapeErrorLog, maxRequests int) *metricsHandler {
	h := &metricsHandler{set: set, gatherer: g, errorLog: errorLog}
	if maxRequests > 0 {
		h.inflight = make(chan struct{}, maxRequests)
	}
	return h
}

var gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func (h *metricsHandler) ServeHTTP(rsp http.ResponseWriter, req *http.Request) {
	if h.inflight != nil {
		select {
		case h.inflight <- struct{}{}:
			defer func() { <-h.inflight }()
		default:
			http.Error(rsp, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", cap(h.inflight)), http.StatusServiceUnavailable)
			return
		}
	}
	format := expfmt.NegotiateAccept(req.Header, metricsFormats...)
	rsp.Header().Add("Vary", "Accept")
	rsp.Header().Add("Vary", "Accept-Encoding")
	rsp.Header().Set("Content-Type", string(format))
	var w io.Writer = rsp
	if acceptsGzip(req.Header.Get("Accept-Encoding")) {
		rsp.Header().Set("Content-Encoding", "gzip")
		gz := gzipPool.Get().(*gzip.Writer)
		gz.Reset(rsp)
		defer func() { gz.Close(); gzipPool.Put(gz) }()
		w = gz
	}

	// ?name[]=... keeps only the families named, as promhttp's does.
	var only map[string]bool
	if names := req.URL.Query()["name[]"]; len(names) > 0 {
		only = map[string]bool{}
		for _, n := range names {
			only[n] = true
		}
	}
	wanted := func(mf *dto.MetricFamily) bool { return only == nil || only[mf.GetName()] }

	fw := newFamilyWriter(w, format)
	if err := h.set.Stream(func(mf *dto.MetricFamily) error {
		if !wanted(mf) {
			return nil
		}
		return fw.chunk(mf)
	}); err != nil {
		h.errorLog.Println("error encoding and sending metric family:", err)
		return
	}
	if err := fw.flush(); err != nil {
		h.errorLog.Println("error encoding and sending metric family:", err)
		return
	}
	mfs, err := h.gatherer.Gather()
	if err != nil {
		h.errorLog.Println("error gathering metrics:", err)
	}
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range mfs {
		if !wanted(mf) {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			h.errorLog.Println("error encoding and sending metric family:", err)
			if lograte.ClientGone(err) {
				return
			}
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		c.Close()
	}
}

// acceptsGzip reads an Accept-Encoding header: gzip is taken unless it is
// absent or refused with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// familyWriter writes a family that comes in chunks as one family. In the
// text formats a chunk's samples follow the last chunk's, without its
// HELP and TYPE lines. In the protobuf format, where a family is one
// length-prefixed message, the chunks' encodings are concatenated: two
// messages back to back decode as one, their repeated fields (the
// metrics) appended, the rest (name, help, type) the same in each.
//
// A chunk whose names need no escaping (all of ours: the config allows
// only legacy label names) skips the escaping step, which copies a chunk's
// metric list to find that out.
type familyWriter struct {
	w          io.Writer
	proto      bool
	scheme     model.EscapingScheme
	enc, plain expfmt.Encoder // text formats: a chunk into buf, escaped or as it is
	buf        bytes.Buffer
	pb         []byte // protobuf: the family so far
	name       string // the family being written
}

func newFamilyWriter(w io.Writer, format expfmt.Format) *familyWriter {
	fw := &familyWriter{w: w, proto: format.FormatType() == expfmt.TypeProtoDelim, scheme: format.ToEscapingScheme()}
	fw.enc = expfmt.NewEncoder(&fw.buf, format)
	fw.plain = expfmt.NewEncoder(&fw.buf, format.WithEscapingScheme(model.NoEscaping))
	return fw
}

// legacyNames reports whether no name in mf needs escaping.
func legacyNames(mf *dto.MetricFamily) bool {
	if !model.LegacyValidation.IsValidMetricName(mf.GetName()) {
		return false
	}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if !model.LegacyValidation.IsValidLabelName(l.GetName()) ||
				l.GetName() == model.MetricNameLabel && !model.LegacyValidation.IsValidMetricName(l.GetValue()) {
				return false
			}
		}
	}
	return true
}

func (fw *familyWriter) chunk(mf *dto.MetricFamily) error {
	cont := mf.GetName() == fw.name
	if !cont {
		if err := fw.flush(); err != nil {
			return err
		}
		fw.name = mf.GetName()
	}
	plain := fw.scheme == model.NoEscaping || legacyNames(mf)
	if fw.proto {
		if !plain {
			mf = model.EscapeMetricFamily(mf, fw.scheme)
		}
		// Grown here by doubling: protobuf's own growth (a quarter at a
		// time) left four times the family's size behind as garbage.
		if n := proto.Size(mf); cap(fw.pb)-len(fw.pb) < n {
			grown := make([]byte, len(fw.pb), max(2*cap(fw.pb), len(fw.pb)+n))
			copy(grown, fw.pb)
			fw.pb = grown
		}
		var err error
		fw.pb, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(fw.pb, mf)
		return err
	}
	fw.buf.Reset()
	enc := fw.enc
	if plain {
		enc = fw.plain
	}
	if err := enc.Encode(mf); err != nil {
		return err
	}
	b := fw.buf.Bytes()
	for cont && len(b) > 0 && b[0] == '#' {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		b = b[i+1:]
	}
	_, err := fw.w.Write(b)
	return err
}

// flush ends the family being written.
func (fw *familyWriter) flush() error {
	fw.name = ""
	if !fw.proto || len(fw.pb) == 0 {
		return nil
	}
	_, err := fw.w.Write(protowire.AppendVarint(nil, uint64(len(fw.pb))))
	if err == nil {
		_, err = fw.w.Write(fw.pb)
	}
	fw.pb = fw.pb[:0]
	return err
}
