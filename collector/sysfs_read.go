package collector

import (
	"os"
	"syscall"
)

// readFileNoBlock reads a small /proc or /sys text file with plain blocking
// read syscalls, and rejects one the kernel cannot have written (see
// checkText). Go's os.ReadFile goes through the poller, and some hwmon
// drivers answer its non-blocking reads with EAGAIN forever.
func readFileNoBlock(path string) ([]byte, error) {
	b, err := readBlocking(path)
	if err != nil {
		return nil, err
	}
	return b, checkText(path, b)
}

func readBlocking(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// readRaw reads a regular file as readFileNoBlock does, without its checks;
// anything else (a FIFO, a directory) is an error at once, never a wait.
func readRaw(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: syscall.EINVAL}
	}
	return readBlocking(path)
}

// readAttr reads one sysfs attribute: readFileNoBlock within a page.
func readAttr(path string) ([]byte, error) {
	b, err := readFileNoBlock(path)
	if err == nil {
		err = checkAttr(path, b)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}
