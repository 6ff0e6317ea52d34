package config

// SyntheticConfig is the synthetic section: captive-portal and DNS-over-HTTPS checks. Off (no targets) unless configured.
type SyntheticConfig struct{}

func (c *SyntheticConfig) validate(g *Global, add adder) {}
