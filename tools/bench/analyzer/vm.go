package main

import (
	"fmt"
	"io"
	"net/http"

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
