package config

// MeshConfig is the mesh section: the UDP/TCP responder and node-to-node
// probes. Off unless configured.
type MeshConfig struct{}

func (c *MeshConfig) validate(g *Global, add adder) {}
