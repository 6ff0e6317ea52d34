package main

import (
	"net/http"
	"net/http/pprof"
)

// handlePprof serves Go's runtime profiles on the exporter's own mux, only
// with --web.enable-pprof: importing net/http/pprof registers them on
// http.DefaultServeMux, which the exporter does not serve, so without this
// the landing page's profile links would answer 404.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also heap, goroutine, allocs, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
