package config

// TCPConfig is the tcp section: TCP connect probes. Off (no targets) unless configured.
type TCPConfig struct{}

func (c *TCPConfig) validate(g *Global, add adder) {}
