package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.yaml.in/yaml/v3"
)

// Limits on what one configuration may hold. They are far above any real
// node's needs (an edge node probes tens of targets, a mesh hub hundreds)
// and keep a wrong file — a fleet inventory, a log — from costing the node
// hundreds of megabytes before a person reads the error: a 10 MB file of
// 235 000 targets took 780 MB and 23 s to check.
const (
	MaxFileSize = 1 << 20 // bytes of YAML, for the config file and a mesh peers_file
	MaxEntries  = 10000   // entries in any one list (targets, peers) or mapping (labels)
)

// Options says where a configuration comes from.
type Options struct {
	File  string   // the YAML file; empty: the embedded default
	Hosts []string // quick-start ping targets from the command line
	// AllowEmpty accepts a configuration that probes nothing (with a
	// warning) instead of refusing it.
	AllowEmpty bool
}

// Load reads o.File (the embedded default when empty), adds o.Hosts and
// refuses a configuration with nothing to probe unless o.AllowEmpty, in
// which case it logs one warning. Hosts on the command line replace the
// embedded default's localhost target, so the default never counts as empty.
func Load(o Options, logger *slog.Logger) (*Config, error) {
	var cfg *Config
	if o.File == "" {
		cfg = Default()
		if len(o.Hosts) > 0 {
			cfg.Ping.Targets = nil
		}
	} else {
		c, err := LoadFile(o.File)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if err := cfg.AddHosts(o.Hosts); err != nil {
		return nil, err
	}
	if cfg.Idle() {
		if !o.AllowEmpty {
			return nil, fmt.Errorf("%s: no targets: no section (ping, mtr, http, dns, tcp, synthetic, bandwidth, mesh) has one and no mesh responder or peers_file is set, so the exporter would probe nothing (and a reload would drop every target); add targets, or pass --config.allow-empty if host metrics alone are wanted", cfg.Source)
		}
		logger.Warn("THE CONFIGURATION HAS NO TARGETS: nothing is probed, only host metrics are exported (accepted because of --config.allow-empty)", "config", cfg.Source)
	}
	return cfg, nil
}

// Targets is the number of targets and static mesh peers in every section.
func (c *Config) Targets() int {
	return len(c.Ping.Targets) + len(c.MTR.Targets) + len(c.HTTP.Targets) + len(c.DNS.Targets) +
		len(c.TCP.Targets) + len(c.Synthetic.CaptivePortal) + len(c.Synthetic.DoH) +
		len(c.Bandwidth.Targets) + len(c.Mesh.Peers)
}

// Idle reports whether the configuration gives the exporter nothing to
// probe or answer: no targets, no mesh peers_file (its peers arrive later)
// and no mesh responder (a node that only answers other nodes' probes has
// a job).
func (c *Config) Idle() bool {
	return c.Targets() == 0 && c.Mesh.PeersFile == "" && !c.Mesh.Responder.Enabled()
}

// readLimited reads a file of at most MaxFileSize bytes; a larger one is
// refused before it is read whole, let alone parsed. what names the file's
// role in the message ("config file", "peers file").
func readLimited(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, tooBig(path, what, st.Size())
	}
	// Stat can be wrong (a file still growing, a pipe): the read is capped too.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooBig(path, what, -1)
	}
	return data, nil
}

func tooBig(path, what string, size int64) error {
	is := "more than 1 MiB"
	if size >= 0 {
		is = fmt.Sprintf("%.1f MiB (%d bytes)", float64(size)/(1<<20), size)
	}
	return fmt.Errorf("%s: the %s is %s, over the limit of 1 MiB (%d bytes); a node's configuration is far smaller: is this the right file?", path, what, is, MaxFileSize)
}

// checkSize refuses data over MaxFileSize (for callers that did not read it
// through readLimited).
func checkSize(name, what string, data []byte) error {
	if len(data) > MaxFileSize {
		return tooBig(name, what, int64(len(data)))
	}
	return nil
}

// checkEntries refuses a list or mapping of more than MaxEntries entries
// anywhere in the document, naming the first entry over the limit. path is
// the name of the document's root ("" for a config, "peers" for a peers
// file).
func checkEntries(name string, n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkEntries(name, c, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		// yaml.v3 checks a mapping for duplicate keys pair by pair: a
		// mapping of 105 000 labels (1 MiB) took six minutes to decode.
		if len(n.Content)/2 > MaxEntries {
			k := n.Content[2*MaxEntries]
			return fmt.Errorf("%s:%d: %s: more than %d keys (it has %d), the limit for one mapping",
				name, k.Line, pathOr(path, k.Value), MaxEntries, len(n.Content)/2)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			if err := checkEntries(name, n.Content[i+1], p); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if len(n.Content) > MaxEntries {
			return fmt.Errorf("%s:%d: %s[%d]: %s has more than %d entries, the limit for one list (it has %d); split the targets over several nodes",
				name, n.Content[MaxEntries].Line, path, MaxEntries, path, MaxEntries, len(n.Content))
		}
		for i, c := range n.Content {
			if err := checkEntries(name, c, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func pathOr(path, top string) string {
	if path == "" {
		return top
	}
	return path
}
