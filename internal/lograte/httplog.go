package lograte

import (
	"log"
	"log/slog"
	"strings"
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
