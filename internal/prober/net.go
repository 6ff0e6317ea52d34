package prober

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Env is where a probe runs: the network namespace its sockets are created in
// and the root its /etc files are read under.
type Env struct {
	// Netns runs fn where sockets are created; nil runs it here. Tests pass
	// a lab host's Do.
	Netns func(fn func() error) error
	// Rootfs is where /etc/resolv.conf and /etc/hosts are read ("" is /).
	Rootfs string
}

func (e Env) do(fn func() error) error {
	if e.Netns == nil {
		return fn()
	}
	return e.Netns(fn)
}

func (e Env) rootfsPath(name ...string) string {
	root := e.Rootfs
	if root == "" {
		root = "/"
	}
	return filepath.Join(append([]string{root}, name...)...)
}

// bindConn makes conn obey ctx: its deadline, and closed when ctx is canceled,
// so no read or write on it can outlive the probe.
func bindConn(ctx context.Context, conn net.Conn) func() bool {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { conn.Close() })
}

// Dial connects from e's namespace; d is the connect time alone (the TCP
// handshake for tcp).
func (e Env) Dial(ctx context.Context, network, addr string) (conn net.Conn, d time.Duration, err error) {
	err = e.do(func() error {
		start := time.Now()
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		d = time.Since(start)
		conn = c
		return err
	})
	return conn, d, err
}

// NetReason sorts a connect error into a bounded set of reasons.
func NetReason(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return "unreachable"
	}
	return "other"
}
