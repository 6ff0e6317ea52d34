package prober

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestDialAndReasons(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	conn, d, err := Env{}.Dial(ctxTimeout(t, time.Second), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if d <= 0 || d > time.Second {
		t.Errorf("connect time %s", d)
	}
	l.Close() // nothing listens there now: the kernel answers RST
	ctx := ctxTimeout(t, time.Second)
	_, _, err = Env{}.Dial(ctx, "tcp", addr)
	if r := NetReason(ctx, err); r != "refused" {
		t.Errorf("closed port: reason %q (%v), want refused", r, err)
	}
	expired, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if r := NetReason(expired, errors.New("whatever")); r != "timeout" {
		t.Errorf("after the deadline: reason %q, want timeout", r)
	}
	if r := NetReason(context.Background(), errors.New("whatever")); r != "other" {
		t.Errorf("unknown error: reason %q, want other", r)
	}
}

// A conn bound to a context is closed when it ends, so a read cannot outlive the probe.
func TestBindConnClosesOnCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(2 * time.Second)
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	conn, _, err := Env{}.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bindConn(ctx, conn)()
	time.AfterFunc(50*time.Millisecond, cancel)
	begin := time.Now()
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded")
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("read returned %s after the cancel", d)
	}
}
