package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"

	"github.com/smokemon/smokemon/analyzer/scenario"
	"time"
)

// importVM streams the generated fleet (each window in ends) straight into
// VictoriaMetrics: no text file on disk, no block building.
func importVM(n int, srv *scenario.Server, ends []time.Time) error {
	for i, e := range ends {
		g := &scenario.Gen{End: e, Interval: time.Minute, Buckets: []float64{0.01, 0.05, 0.1, 0.5}, Seed: 3 + uint64(i), Format: "prometheus"}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(g.Write(pw, fleet(n, e))) }()
		resp, err := http.Post(srv.URL+"/api/v1/import/prometheus", "text/plain", pr)
		pr.Close()
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("import: %s", resp.Status)
		}
	}
	resp, err := http.Get(srv.URL + "/internal/force_flush")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// stop ends the server cleanly first: VictoriaMetrics killed outright loses
// what it had not yet written, and a kept fleet must survive to the next run.
func stop(srv *scenario.Server) {
	if p, err := os.FindProcess(srv.PID()); err == nil && p.Signal(syscall.SIGINT) == nil {
		for range 100 {
			if p.Signal(syscall.Signal(0)) != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	srv.Stop()
}
