package probes

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/smokemon/smokemon/collector"
	"github.com/smokemon/smokemon/internal/config"
	"github.com/smokemon/smokemon/internal/mesh"
)

// The mesh collector measures latency between a fleet's own nodes: it runs
// the responder other nodes probe, and probes its peers over UDP (RTT,
// one-way delays, loss and reordering by direction), a persistent TCP flow
// (RTT) and fresh TCP connections (connect latency). Probing runs on the
// engine's clock; a scrape only reads counters.

// meshPollInterval is how often the peers file's mtime is checked and due
// names are looked up: one stat(2) a second.
const meshPollInterval = time.Second

func init() {
	register("mesh", newMeshCollector)
}

type meshCollector struct {
	logger *slog.Logger
	deps   Deps

	mu        sync.Mutex
	engine    *mesh.Engine
	engineErr error
	responder *mesh.Responder
	respCfg   mesh.ResponderConfig
	respWant  bool
	respErr   error
	respCount mesh.ResponderCounters

	section    config.MeshConfig
	labelNames []string
	global     map[string]string
	entries    []*meshEntry
	resolveIv  time.Duration
	file       peersFile

	loop sync.Once
	stop chan struct{}
	done sync.WaitGroup

	fams *meshFamilies
}

// peersFile is the state of the fleet tool's peer list.
type peersFile struct {
	path    string
	mtime   time.Time
	size    int64
	peers   []config.MeshPeer // the last good list
	ok      bool
	lastOK  time.Time
	lastErr string
}

// meshEntry is one peer, static or from the file.
type meshEntry struct {
	cfg    config.MeshPeer
	labels []string // values for labelNames

	// Guarded by meshCollector.mu.
	host        string
	port        uint16
	tcpPort     uint16
	addr        netip.Addr
	stats       *meshStats
	handle      *mesh.Peer
	nextResolve time.Time
	lastErr     string
	ipOf        netip.Addr // the address ip is of
	ip          string     // peer_info's ip, formatted once per address
}

func newMeshCollector(logger *slog.Logger, cfg *config.Config, deps Deps) (collector.Collector, error) {
	return started(&meshCollector{logger: logger, deps: deps, stop: make(chan struct{})}, cfg)
}

// Prepare takes a new mesh section. On commit, peers whose name and labels
// are unchanged keep their counters, and the responder is reopened only
// when its settings change. Neither the responder's socket nor the peers
// file can fail a reload, so both are left to the commit: a responder that
// cannot listen (port in use) is logged and reported down while the probes
// still run, and a bad peers file keeps the previous list, as it does when
// it changes between reloads.
func (c *meshCollector) Prepare(cfg *config.Config) (func(), error) {
	path := cfg.Mesh.PeersFile
	if path != "" && !filepath.IsAbs(path) && cfg.Source != config.DefaultName && cfg.Source != "" {
		path = filepath.Join(filepath.Dir(cfg.Source), path)
	}
	return func() { c.commit(cfg, path) }, nil
}

func (c *meshCollector) commit(cfg *config.Config, path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.section = cfg.Mesh
	c.global = cfg.Global.Labels
	c.resolveIv = time.Duration(cfg.Global.ResolveInterval)
	c.reloadResponderLocked(cfg.Mesh.Responder)
	if path != c.file.path {
		c.file = peersFile{path: path}
	}
	if path != "" {
		c.readPeersFileLocked(true)
	}
	c.applyPeersLocked()
	if path != "" || len(c.entries) > 0 {
		c.loop.Do(func() {
			c.done.Add(1)
			go c.pollLoop()
		})
	}
}

func (c *meshCollector) reloadResponderLocked(r config.MeshResponder) {
	want := mesh.ResponderConfig{Listen: r.Listen, UDPPort: r.UDPPort, TCPPort: r.TCPPort,
		RateLimit: r.RateLimit, RateBurst: r.RateBurst, MaxConnections: r.MaxConnections}
	c.respWant = r.Enabled()
	if c.responder != nil && c.respCfg == want {
		return
	}
	if c.responder != nil {
		c.responder.Close()
		c.responder = nil
	}
	c.respCfg, c.respErr = want, nil
	if !c.respWant {
		return
	}
	rs, err := mesh.NewResponder(c.logger, want, &c.respCount)
	if err != nil {
		c.respErr = err
		c.logger.Error("mesh responder cannot listen; other nodes' probes to this one will fail, this node's probes still run", "err", err)
		return
	}
	c.responder = rs
	ts := "kernel receive timestamps"
	if !rs.KernelTimestamps() {
		ts = "user-space receive timestamps (SO_TIMESTAMPNS refused)"
	}
	c.logger.Info("mesh responder listening", "udp", rs.UDPAddr(), "tcp", rs.TCPAddr(), "timestamps", ts)
}

// readPeersFileLocked loads the peers file when it changed (or always when
// force is set). A bad file keeps the previous list and says why, naming the
// file and line.
func (c *meshCollector) readPeersFileLocked(force bool) bool {
	f := &c.file
	st, err := os.Stat(f.path)
	if err == nil && !force && st.ModTime().Equal(f.mtime) && st.Size() == f.size && f.ok {
		return false
	}
	if err == nil && !force && st.ModTime().Equal(f.mtime) && st.Size() == f.size && !f.ok {
		return false // still the same broken file: said so already
	}
	if err == nil {
		f.mtime, f.size = st.ModTime(), st.Size()
	}
	var peers []config.MeshPeer
	if err == nil {
		sec := c.section
		sec.PeersFile = f.path
		peers, err = sec.LoadPeersFile()
	}
	if err != nil {
		f.ok = false
		if msg := err.Error(); msg != f.lastErr {
			c.logger.Error("mesh peers file rejected; the previous peer list stays in force", "file", f.path, "err", msg)
			f.lastErr = msg
		}
		return false
	}
	changed := !f.ok || !slices.EqualFunc(peers, f.peers, meshPeerEqual)
	f.peers, f.ok, f.lastOK, f.lastErr = peers, true, time.Now(), ""
	if changed {
		c.logger.Info("mesh peers file loaded", "file", f.path, "peers", len(peers))
	}
	return changed
}

func meshPeerEqual(a, b config.MeshPeer) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// applyPeersLocked reconciles the engine with static + file peers.
func (c *meshCollector) applyPeersLocked() {
	peers := slices.Clone(c.section.Peers)
	peers = append(peers, c.file.peers...)
	ls := newLabelSet(c.global, ownLabels(peers, func(p config.MeshPeer) map[string]string { return p.Labels })...)
	labelsChanged := !slices.Equal(ls.names, c.labelNames)
	c.labelNames = ls.names
	c.fams = newMeshFamilies(ls.names)

	var next []*meshEntry
	for _, p := range peers {
		e := &meshEntry{cfg: p, labels: ls.values(p.Labels)}
		host, port, _ := net.SplitHostPort(p.Address)
		pn, _ := strconv.Atoi(port)
		e.host, e.port, e.tcpPort = host, uint16(pn), uint16(pn)
		if p.TCPPort != 0 {
			e.tcpPort = uint16(p.TCPPort)
		}
		next = append(next, e)
	}
	entries, gone := reconcile(c.entries, next, func(e *meshEntry) string { return e.cfg.Name }, func(e, o *meshEntry) *meshEntry {
		if o.host == e.host {
			e.addr, e.nextResolve, e.lastErr = o.addr, o.nextResolve, o.lastErr
		}
		if !labelsChanged && slices.Equal(o.labels, e.labels) {
			e.stats = o.stats
		}
		if o.handle != nil && e.stats == o.stats && e.addr.IsValid() {
			e.handle, o.handle = o.handle, nil
		}
		return e
	})
	for _, o := range gone {
		if o.handle != nil {
			c.engine.Remove(o.handle)
		}
	}
	for _, e := range entries {
		if ip, err := netip.ParseAddr(e.host); err == nil {
			e.addr = ip.Unmap()
		}
		if e.stats == nil {
			e.stats = &meshStats{name: e.cfg.Name, labels: e.labels}
		}
		if e.addr.IsValid() {
			c.attachLocked(e)
		}
	}
	c.entries = entries
}

// attachLocked starts or updates probing of e at e.addr.
func (c *meshCollector) attachLocked(e *meshEntry) {
	if c.engine == nil && c.engineErr == nil {
		c.engine, c.engineErr = mesh.NewEngine(c.logger)
		if c.engineErr != nil {
			c.logger.Error("mesh prober cannot open its UDP socket; mesh probes are down", "err", c.engineErr)
		}
	}
	if c.engine == nil {
		return
	}
	set := mesh.Settings{
		Interval: e.cfg.IntervalD(), Timeout: e.cfg.TimeoutD(),
		Size: e.cfg.PacketSize, ReconnectAfter: e.cfg.ReconnectAfter,
	}
	for p, name := range []string{config.MeshUDP, config.MeshTCP, config.MeshTCPConnect} {
		if e.cfg.Has(name) {
			set.Protos[p] = true
			c.ensureHistograms(e.stats, mesh.Proto(p))
		}
	}
	udp := netip.AddrPortFrom(e.addr, e.port)
	tcp := netip.AddrPortFrom(e.addr, e.tcpPort)
	if e.handle != nil {
		c.engine.Update(e.handle, udp, tcp, set)
	} else {
		e.handle = c.engine.Add(udp, tcp, set, e.stats)
	}
}

// RTT and one-way histograms are ping's type, with ping's buckets, so mesh
// and ping series line up on one dashboard; client_golang's histogram with
// native buckets held 3/4 of a peer's heap (issue 18).
func (c *meshCollector) ensureHistograms(s *meshStats, p mesh.Proto) {
	if s.rtt[p] == nil {
		s.rtt[p] = newRTTHistogram(pingBuckets, histogramBoth, c.deps.Now)
	}
	if p == mesh.UDP && s.oneWay[0] == nil {
		for _, d := range []mesh.Direction{mesh.Forward, mesh.Return} {
			s.oneWay[d] = newRTTHistogram(pingBuckets, histogramBoth, c.deps.Now)
		}
	}
}

// pollLoop re-reads the peers file when it changes and looks names up.
func (c *meshCollector) pollLoop() {
	defer c.done.Done()
	tick := time.NewTicker(meshPollInterval)
	defer tick.Stop()
	for {
		c.mu.Lock()
		if c.file.path != "" && c.readPeersFileLocked(false) {
			c.applyPeersLocked()
		}
		c.mu.Unlock()
		c.resolveDue()
		select {
		case <-tick.C:
		case <-c.stop:
			return
		}
	}
}

func (c *meshCollector) resolveDue() {
	now := time.Now()
	c.mu.Lock()
	var due []*meshEntry
	for _, e := range c.entries {
		if _, err := netip.ParseAddr(e.host); err != nil && !now.Before(e.nextResolve) {
			due = append(due, e)
		}
	}
	c.mu.Unlock()
	for _, e := range due {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := c.deps.Resolver.LookupNetIP(ctx, "ip", e.host)
		cancel()
		if err == nil && len(addrs) == 0 {
			err = fmt.Errorf("%s has no address", e.host)
		}
		c.mu.Lock()
		if !slices.Contains(c.entries, e) {
			c.mu.Unlock()
			continue
		}
		if err != nil {
			if e.lastErr != err.Error() {
				c.logger.Warn("cannot resolve mesh peer; it is down until a lookup succeeds", "peer", e.cfg.Name, "host", e.host, "err", err)
			}
			e.lastErr, e.nextResolve = err.Error(), now.Add(resolveRetry)
			if e.handle != nil && c.engine != nil {
				c.engine.Remove(e.handle)
				e.handle = nil
			}
			e.addr = netip.Addr{}
			c.mu.Unlock()
			continue
		}
		addr := addrs[0].Unmap()
		for _, a := range addrs { // IPv4 first, like ping's auto
			if a.Unmap().Is4() {
				addr = a.Unmap()
				break
			}
		}
		e.lastErr, e.nextResolve = "", now.Add(c.resolveIv)
		if addr != e.addr || e.handle == nil {
			e.addr = addr
			c.attachLocked(e)
		}
		c.mu.Unlock()
	}
}

// Close stops the loop, the prober and the responder.
func (c *meshCollector) Close() error {
	close(c.stop)
	c.done.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.engine != nil {
		c.engine.Close()
	}
	if c.responder != nil {
		c.responder.Close()
	}
	return nil
}
