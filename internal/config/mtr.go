package config

// MTRConfig is the mtr section: per-hop path probing (TTL-limited ICMP echo). Off (no targets) unless configured.
type MTRConfig struct{}

func (c *MTRConfig) validate(g *Global, add adder) {}
