package lograte

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// ServerErrorLog is an http.Server's ErrorLog that writes to logger, in its
// format (exporter-toolkit serves the server it is given, so this is where
// its TLS handshake errors go).
func ServerErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(serverLogWriter{logger}, "", 0)
}

type serverLogWriter struct{ logger *slog.Logger }

// Write turns one of net/http's lines into a record. A failed handshake
// (port scanners, health checks that only open TCP, clients that do not
// trust the certificate) is the client's doing: a warning whose message
// does not carry the client's address, so the rate limit holds a flood of
// them to a few lines.
func (s serverLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	if rest, ok := strings.CutPrefix(line, "http: TLS handshake error from "); ok {
		remote, why, _ := strings.Cut(rest, ": ")
		s.logger.Warn("TLS handshake failed", "remote", remote, "err", why)
		return len(p), nil
	}
	s.logger.Error("HTTP server error", "err", strings.TrimPrefix(line, "http: "))
	return len(p), nil
}

// ClientGone reports whether err means the scraper hung up or stopped
// reading (a Prometheus scrape timeout, curl interrupted): the client's
// business, not the server's failure.
func ClientGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, http.ErrHandlerTimeout)
}

// ScrapeErrorLog is promhttp's ErrorLog (HandlerOpts.ErrorLog). promhttp logs every metric family
// it fails to write, so one scraper that hangs up makes dozens of lines of
// the same broken pipe; those are left to LogDisconnects, which logs one
// line per request. Other errors are logged with promhttp's words as the
// message (so the rate limit sees them as one) and the error as an attr.
type ScrapeErrorLog struct{ Logger *slog.Logger }

func (l ScrapeErrorLog) Println(v ...any) {
	var err error
	var words []string
	for _, a := range v {
		if e, ok := a.(error); ok && err == nil {
			err = e
			continue
		}
		words = append(words, fmt.Sprint(a))
	}
	if err != nil && ClientGone(err) {
		return
	}
	l.Logger.Error(strings.TrimSuffix(strings.Join(words, " "), ":"), "err", err)
}

// LogDisconnects logs, at debug, the one scrape in which the client went
// away while the answer was being written.
func LogDisconnects(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		if cw.err != nil && ClientGone(cw.err) {
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
