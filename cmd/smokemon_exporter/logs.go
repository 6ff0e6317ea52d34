package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/smokemon/smokemon/internal/lograte"
)

// Every line the exporter writes goes through one rate-limited slog handler
// in the configured format: its own, promhttp's and net/http's (TLS
// handshakes), which would otherwise print in the log package's format.

// newLogger is promslog's logger behind the rate limit (per level, message
// and collector), and the counter of what the limit dropped, for the
// registry.
func newLogger(c *promslog.Config) (*slog.Logger, prometheus.Collector) {
	suppressed := lograte.SuppressedCounter("smokemon", "exporter")
	h := lograte.New(promslog.New(c).Handler(), lograte.DefaultBurst, lograte.DefaultInterval, suppressed, "collector")
	return slog.New(h), suppressed
}

// clientGone reports whether err means the scraper hung up or stopped
// reading (a Prometheus scrape timeout, curl interrupted): the client's
// business, not the exporter's failure.
func clientGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, http.ErrHandlerTimeout)
}

// scrapeErrorLog is promhttp's ErrorLog. promhttp logs every metric family
// it fails to write, so one scraper that hangs up makes dozens of lines of
// the same broken pipe; those are left to logDisconnects, which logs one
// line per request. Other errors are logged with promhttp's words as the
// message (so the rate limit sees them as one) and the error as an attr.
type scrapeErrorLog struct{ logger *slog.Logger }

func (l scrapeErrorLog) Println(v ...any) {
	var err error
	var words []string
	for _, a := range v {
		if e, ok := a.(error); ok && err == nil {
			err = e
			continue
		}
		words = append(words, fmt.Sprint(a))
	}
	if err != nil && clientGone(err) {
		return
	}
	l.logger.Error(strings.TrimSuffix(strings.Join(words, " "), ":"), "err", err)
}

// logDisconnects logs, at debug, the one scrape in which the client went
// away while the answer was being written.
func logDisconnects(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		if cw.err != nil && clientGone(cw.err) {
			logger.Debug("scrape client went away before the answer was written",
				"remote", r.RemoteAddr, "path", r.URL.Path, "bytes_written", cw.n, "err", cw.err)
		}
	})
}

// countingWriter remembers how much of the answer was written and the
// first error writing it.
type countingWriter struct {
	http.ResponseWriter
	n   int64
	err error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
