package testutil

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// HangUp does what a scraper that times out does to a server: it asks for
// path on addr, reads the first keep bytes of the answer and drops the
// connection with a reset. Its receive buffer is kept small, so an answer
// longer than a few tens of KB is still being written when it hangs up.
// It returns how much it read.
func HangUp(addr, path string, keep int) (int, error) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: identity\r\n\r\n", path, addr); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(c, make([]byte, keep))
	c.(*net.TCPConn).SetLinger(0) // close sends RST, as a killed scraper's kernel does
	return n, err
}
