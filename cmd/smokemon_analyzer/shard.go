package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/smokemon/smokemon/analyzer"
)

// addScaleFlags: a cold start that serves early, and several analyzers
// over one fleet, each told its shard.
func (o *opts) addScaleFlags(app *kingpin.Application) {
	app.Flag("warmup.window", "On a cold start, the end of the window the first cycle reads; later cycles, run back to back, read --warmup.chunk further back each until the lookback is full (0: read it all at once).").Default("5m").DurationVar(&o.cfg.WarmupWindow)
	app.Flag("warmup.chunk", "How much further back each warm-up cycle reads.").Default("10m").DurationVar(&o.cfg.WarmupChunk)
	app.Flag("shard.count", "Analyzers sharing the fleet: each analyses the nodes whose FNV-1a hash of the node label mod shard.count is its shard.index.").Default("1").IntVar(&o.cfg.Shard.Count)
	app.Flag("shard.index", "This analyzer's shard, 0 to shard.count-1. Shard 0 also builds the fleet incidents (see --shard.peer).").Default("0").IntVar(&o.cfg.Shard.Index)
	app.Flag("shard.filter", "Where the other shards' series are dropped: server (a node=~ matcher of this shard's nodes in every query; VictoriaMetrics needs -search.maxQueryLen above ~10 bytes per node of the shard) or client (after the answer arrives).").Default("server").EnumVar(&o.cfg.Shard.Filter, "server", "client")
	app.Flag("shard.peer", "On shard 0: base URL of another shard's analyzer, whose active incidents join the fleet incidents (repeatable).").PlaceHolder("URL").StringsVar(&o.peers)
}

// fleetPeers fetches the active incidents of the other shards' analyzers.
// Any peer that fails is named; the others' incidents still count.
func fleetPeers(urls []string) analyzer.FleetPeers {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context) ([]analyzer.Incident, error) {
		var all []analyzer.Incident
		var errs []error
		for _, u := range urls {
			incs, err := peerIncidents(ctx, client, strings.TrimSuffix(u, "/")+"/api/v1/incidents?active=true")
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", u, err))
				continue
			}
			all = append(all, incs...)
		}
		return all, errors.Join(errs...)
	}
}

func peerIncidents(ctx context.Context, client *http.Client, url string) ([]analyzer.Incident, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	var body struct {
		Up        bool                `json:"up"`
		Incidents []analyzer.Incident `json:"incidents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decoding the incidents: %w", err)
	}
	return body.Incidents, nil
}
