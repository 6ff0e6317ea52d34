package config

// DNSConfig is the dns section: DNS lookup probes. Off (no targets) unless configured.
type DNSConfig struct{}

func (c *DNSConfig) validate(g *Global, add adder) {}
