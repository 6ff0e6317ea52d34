package mesh

import (
	"io"
	"net"
	"time"
)

// The prober's TCP side: one persistent connection per peer for the tcp
// protocol (probes and replies framed on it), and a fresh handshake per
// probe for tcp_connect.

// tcpLink is a peer's persistent TCP flow.
type tcpLink struct {
	conn     net.Conn
	session  uint32
	seq      uint32
	dialing  bool
	nextDial int64
	lost     int // consecutive
	everUp   bool
}

// tcpWriteWait bounds a write on a connection whose send buffer is full (a
// stalled peer): the scheduler must not wait on one peer.
const tcpWriteWait = 5 * time.Millisecond

func (e *Engine) sendTCPLocked(p *Peer, buf []byte) {
	p.h.Sent(TCP)
	c := p.tcpc.conn
	if c == nil {
		e.dialLocked(p)
		p.h.Lost(TCP, DirUnknown)
		return
	}
	p.tcpc.seq++
	frame := buf[:max(p.set.Size, HeaderLen)]
	sent := time.Now()
	PutRequest(frame, p.tcpc.session, p.tcpc.seq, sent.UnixNano())
	c.SetWriteDeadline(sent.Add(tcpWriteWait))
	if _, err := c.Write(frame); err != nil {
		// A partial frame would desynchronise the stream: start afresh.
		e.Counters.SendErrors.Add(1)
		p.h.Lost(TCP, DirUnknown)
		e.closeTCPLocked(p)
		e.dialLocked(p)
		return
	}
	e.track(p, TCP, p.tcpc.session, p.tcpc.seq, sent)
}

func (e *Engine) closeTCPLocked(p *Peer) {
	if p.tcpc.conn != nil {
		p.tcpc.conn.Close() // its reader exits
		delete(e.sessions, p.tcpc.session)
		p.tcpc.conn = nil
	}
	p.tcpc.lost = 0
}

// dialLocked starts connecting p's persistent TCP flow in the background,
// unless it is already connecting or waiting after a failed attempt.
func (e *Engine) dialLocked(p *Peer) {
	if p.tcpc.dialing || p.tcpc.conn != nil || e.mono() < p.tcpc.nextDial || e.ctx.Err() != nil {
		return
	}
	p.tcpc.dialing = true
	addr, timeout := p.tcp, p.set.Timeout
	e.done.Add(1)
	go func() {
		defer e.done.Done()
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(e.ctx, "tcp", addr.String())
		e.mu.Lock()
		defer e.mu.Unlock()
		p.tcpc.dialing = false
		if err != nil {
			// Retry no faster than once a second, whatever the interval.
			p.tcpc.nextDial = e.mono() + int64(max(p.set.Interval, time.Second))
			return
		}
		if p.removed || p.tcp != addr || !p.set.Protos[TCP] || e.ctx.Err() != nil {
			c.Close()
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		p.tcpc.conn = c
		p.tcpc.session = e.newSessionLocked(p)
		p.tcpc.seq = 0
		p.tcpc.lost = 0
		if p.tcpc.everUp {
			p.h.Reconnected()
		}
		p.tcpc.everUp = true
		e.done.Add(1)
		go e.readTCP(p, c, p.tcpc.session)
	}()
}

// readTCP matches one connection's replies until it closes.
func (e *Engine) readTCP(p *Peer, c net.Conn, session uint32) {
	defer e.done.Done()
	buf := make([]byte, MaxLen)
	for {
		if _, err := io.ReadFull(c, buf[:8]); err != nil {
			break
		}
		n, err := checkPrefix(buf[:8], typeReply)
		if err != nil {
			e.Counters.Malformed.Add(1)
			break
		}
		if _, err := io.ReadFull(c, buf[8:n]); err != nil {
			break
		}
		now := time.Now()
		h, _ := ParseReply(buf[:n])
		e.mu.Lock()
		if h.Session != session {
			e.Counters.Foreign.Add(1)
		} else {
			e.matchLocked(p, TCP, &h, now, 0)
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	if p.tcpc.conn == c { // closed by the peer: connect again at the next probe
		e.closeTCPLocked(p)
	}
	e.mu.Unlock()
	c.Close()
}

// connectLocked times one fresh TCP handshake in the background.
func (e *Engine) connectLocked(p *Peer) {
	p.h.Sent(TCPConnect)
	if p.connecting >= maxConnectsInFlight || e.ctx.Err() != nil {
		p.h.Lost(TCPConnect, DirUnknown)
		return
	}
	p.connecting++
	addr, timeout := p.tcp, p.set.Timeout
	e.done.Add(1)
	go func() {
		defer e.done.Done()
		d := net.Dialer{Timeout: timeout}
		start := time.Now()
		c, err := d.DialContext(e.ctx, "tcp", addr.String())
		took := time.Since(start)
		if err == nil {
			c.Close()
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		p.connecting--
		if p.removed {
			return
		}
		if err != nil || took > timeout {
			p.h.Lost(TCPConnect, DirUnknown)
			return
		}
		p.h.Reply(TCPConnect, took, Sample{})
	}()
}
