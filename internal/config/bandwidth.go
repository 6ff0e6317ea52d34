package config

// BandwidthConfig is the bandwidth section: scheduled iperf3 runs and ping under load. Off (no targets) unless configured.
type BandwidthConfig struct{}

func (c *BandwidthConfig) validate(g *Global, add adder) {}
