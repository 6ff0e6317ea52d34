// Command grafana-schema checks Grafana dashboard JSON files against the
// dashboard schema Grafana publishes, by strict decoding with the
// grafana-foundation-sdk (Apache-2.0): a field the schema does not have, or a
// value of the wrong type, in the dashboard, a panel, its options, its custom
// field config or a Prometheus query is an error.
//
//	go run . ../../grafana/dashboards/*.json
//
// A module of its own so the project's go.mod does not carry the SDK.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// exportOnly are the keys of Grafana's "export for sharing externally"
// format that the import flow reads and strips: not part of the schema.
var exportOnly = []string{"__inputs", "__requires", "__elements"}

func check(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, k := range exportOnly {
		delete(raw, k)
	}
	if b, err = json.Marshal(raw); err != nil {
		return err
	}
	var d dashboard.Dashboard
	err = d.UnmarshalJSONStrict(b)
	// Some of the SDK's decoders return an empty cog.BuildErrors for
	// success: a non-nil error that lists nothing.
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-schema DASHBOARD.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	bad := 0
	for _, p := range os.Args[1:] {
		if err := check(p); err != nil {
			fmt.Printf("%s: %v\n", p, err)
			bad++
			continue
		}
		fmt.Printf("%s: ok\n", p)
	}
	if bad > 0 {
		os.Exit(1)
	}
}
