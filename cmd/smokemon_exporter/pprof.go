package main

import (
	"net/http"
	"net/http/pprof"
	"runtime"
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

// sampleHeapProfile turns the heap profile off unless pprof serves it.
// Nothing reads it otherwise, yet the runtime keeps a record, never freed,
// for every stack and size it samples (one allocation in 512 KB). In an
// hour's soak (make soak) they grew 456 KB, still 3 KB a minute at the end,
// and the RssAnon floor rose 0.19 ± 0.08 MB/h, against -0.03 ± 0.08
// without them.
func sampleHeapProfile(served bool) {
	if !served {
		runtime.MemProfileRate = 0
	}
}
