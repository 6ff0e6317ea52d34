package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/smokemon/smokemon/analyzer"
)

// healthHandlers adds /-/healthy (the process serves) and /-/ready: 503
// until a cycle has run, and whenever the last cycle could not read the
// ping series from the query API (Prometheus down, refusing the
// credentials); 200 when the last cycle read them.
func healthHandlers(mux *http.ServeMux, e *analyzer.Engine) {
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy.") })
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		s := e.Last()
		switch {
		case s == nil:
			http.Error(w, "Not ready: no cycle has run yet.", http.StatusServiceUnavailable)
		case !s.Up:
			http.Error(w, "Not ready: the last cycle could not query: "+s.Error, http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "Ready.")
		}
	})
}

// ignoreHangups keeps the analyzer running on SIGHUP (a terminal closing, a
// `systemctl reload` from an older unit): it has no configuration file to
// read again. Its flags are read once at start, and the files they name
// for credentials (bearer token, password, those in the HTTP config) are
// read again on every request by the HTTP client.
func ignoreHangups(logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			logger.Info("SIGHUP ignored: nothing to reload (credential files are read on every request; restart to change flags)")
		}
	}()
}
