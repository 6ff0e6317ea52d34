package config

// HTTPConfig is the http section: HTTP(S) probes with phase timings. Off (no targets) unless configured.
type HTTPConfig struct{}

func (c *HTTPConfig) validate(g *Global, add adder) {}
