package lab

// The delay element. The kernel has no netem, so a router's forwarded packets are
// policy-routed into a TUN device, held by a user-space program and written back into
// the same device, from where the kernel routes them on through its main table:
//
//	ip rule  iif <in-if> lookup T        (one table per direction)
//	ip route default dev dly-up table T  (and ::/0)
//
// The rule keys on the incoming interface, so a packet written back (iif dly-up) takes
// the main table and leaves normally; packets addressed to the router itself match the
// local table first and are not delayed. The router decremented the TTL once on the way
// into the TUN and will again on the way out, so the element adds one back: the router
// stays a single hop for traceroute, and the delay sits on its outgoing link.
//
// Accuracy. The element runs in a process of its own: the test binary started again
// with elementEnv set, which init catches. Inside the test process, a busy test (TLS,
// iperf3, the prober itself) kept the element's goroutines waiting for a Go P for
// milliseconds; alone, it is scheduled at once. The TUN descriptors are passed to it,
// and parameters and counters live in a shared memory page, so changing a delay is a
// few stores, not a protocol. Per direction one thread reads the TUN and one releases
// packets from a heap ordered by release time. Go timers wake through the netpoller at
// millisecond granularity, so the releaser instead blocks in ppoll(2) with a nanosecond
// timeout, timer slack 1 ns, and is woken early through an eventfd when a packet due
// sooner arrives. Both threads ask for SCHED_FIFO (best effort). TestDelayElement
// sends timestamped UDP through the element and reports the error it adds beyond the
// programmed delay, ending each measurement with the kernel's receive timestamp.

import (
	"bytes"
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/smokemon/smokemon/internal/testutil"
)

// elementEnv, when set, makes this binary a delay element process instead of whatever
// it was built as.
const elementEnv = "SMOKEMON_LAB_DELAY_ELEMENT"

func init() {
	if os.Getenv(elementEnv) != "" {
		os.Exit(runElement())
	}
}

// DelayParams program one direction of a delay element.
type DelayParams struct {
	Delay time.Duration
	// Jitter adds a uniform random offset in [-Jitter, +Jitter] to each packet's delay
	// (the total never goes below zero). As with netem, packets may then overtake each
	// other.
	Jitter time.Duration
	// Loss is the probability that a packet is dropped.
	Loss float64
	// Reorder is the probability that a packet skips the delay and is sent at once,
	// overtaking the queue (netem's "reorder").
	Reorder float64
}

// DelayStats counts one direction's packets since the element was installed.
type DelayStats struct {
	Forwarded uint64 // written back to the kernel, reordered ones included
	Dropped   uint64 // by Loss
	Reordered uint64 // sent at once by Reorder
	// Late is a histogram of how long after its programmed release time each delayed
	// packet was being handed back to the kernel (buckets bounded by LateBounds, the
	// last one open): the element's own timing error, without the network path around
	// it, from the kernel's routing into the TUN to its routing out.
	Late [len(LateBounds) + 1]uint64
}

// LateQuantile is the upper bound of the Late bucket holding quantile q (0..1); the
// open last bucket reports -1.
func (s DelayStats) LateQuantile(q float64) time.Duration {
	var total uint64
	for _, n := range s.Late {
		total += n
	}
	var cum uint64
	for i, n := range s.Late {
		cum += n
		if float64(cum) >= q*float64(total) && i < len(LateBounds) {
			return LateBounds[i]
		}
	}
	return -1
}

// Sub is the difference of two snapshots of the counters.
func (s DelayStats) Sub(o DelayStats) DelayStats {
	r := DelayStats{Forwarded: s.Forwarded - o.Forwarded, Dropped: s.Dropped - o.Dropped, Reordered: s.Reordered - o.Reordered}
	for i := range r.Late {
		r.Late[i] = s.Late[i] - o.Late[i]
	}
	return r
}

// Delay is a delay element in a router. Up handles packets arriving on the interfaces
// given as up, Down those arriving on the down interfaces.
type Delay struct {
	Up, Down *Direction
}

// The shared page holds one block of slots per direction.
const (
	slotSeq = iota // seqlock over the parameters: odd while they are being written
	slotDelay
	slotJitter
	slotLoss    // float64 bits
	slotReorder // float64 bits
	slotForwarded
	slotDropped
	slotReordered
	slotLate // len(LateBounds)+1 buckets follow
	nSlots   = slotLate + len(LateBounds) + 1
)

// LateBounds are the upper bounds of the buckets of DelayStats.Late.
var LateBounds = [...]time.Duration{
	10 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond,
	200 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
}

type slots = [nSlots]atomic.Uint64

// Direction is one direction of a delay element; its parameters can change at any time
// and apply to packets arriving afterwards.
type Direction struct {
	name string
	mu   sync.Mutex // serialises writers of the seqlock
	s    *slots
}

// Set changes the direction's parameters.
func (d *Direction) Set(p DelayParams) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.s[slotSeq].Add(1)
	d.s[slotDelay].Store(uint64(p.Delay))
	d.s[slotJitter].Store(uint64(p.Jitter))
	d.s[slotLoss].Store(math.Float64bits(p.Loss))
	d.s[slotReorder].Store(math.Float64bits(p.Reorder))
	d.s[slotSeq].Add(1)
}

// Params returns the current parameters.
func (d *Direction) Params() DelayParams { return loadParams(d.s) }

func loadParams(s *slots) DelayParams {
	for {
		seq := s[slotSeq].Load()
		p := DelayParams{
			Delay:   time.Duration(s[slotDelay].Load()),
			Jitter:  time.Duration(s[slotJitter].Load()),
			Loss:    math.Float64frombits(s[slotLoss].Load()),
			Reorder: math.Float64frombits(s[slotReorder].Load()),
		}
		if seq%2 == 0 && s[slotSeq].Load() == seq {
			return p
		}
		runtime.Gosched()
	}
}

// Stats returns the direction's counters.
func (d *Direction) Stats() DelayStats {
	st := DelayStats{Forwarded: d.s[slotForwarded].Load(), Dropped: d.s[slotDropped].Load(), Reordered: d.s[slotReordered].Load()}
	for i := range st.Late {
		st.Late[i] = d.s[slotLate+i].Load()
	}
	return st
}

// DelayElement installs a delay element in h, which must be forwarding. Packets that h
// forwards after receiving them on one of the up interfaces pass through Up, those from
// the down interfaces through Down. Both directions start with zero delay.
func (h *Host) DelayElement(t testing.TB, up, down []string) *Delay {
	t.Helper()
	shm, mem, err := sharedPage()
	if err != nil {
		t.Fatalf("%s: delay element: %v", h, err)
	}
	t.Cleanup(func() { unix.Munmap(mem); shm.Close() })
	d := &Delay{
		Up:   &Direction{name: "dly-up", s: (*slots)(unsafe.Pointer(&mem[0]))},
		Down: &Direction{name: "dly-down", s: (*slots)(unsafe.Pointer(&mem[unsafe.Sizeof(slots{})]))},
	}
	files := []*os.File{}
	for i, dir := range []*Direction{d.Up, d.Down} {
		tun, err := h.openTUN(dir.name)
		if err != nil {
			t.Fatalf("%s: delay element: %v", h, err)
		}
		// The element holds its own copy; ours goes when the test ends, and with the
		// last copy the device.
		t.Cleanup(func() { tun.Close() })
		files = append(files, tun)
		table := fmt.Sprint(200 + i)
		ins := up
		if dir == d.Down {
			ins = down
		}
		h.ip("link", "set", dir.name, "up")
		for _, fam := range []string{"-4", "-6"} {
			h.ip(fam, "route", "add", "default", "dev", dir.name, "table", table)
			for _, in := range ins {
				h.ip(fam, "rule", "add", "iif", in, "lookup", table, "pref", "1000")
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), elementEnv+"=1")
	cmd.ExtraFiles = append(files, shm) // fds 3, 4, 5
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: delay element: %v", h, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if s := out.String(); s != "" {
			t.Logf("%s: delay element said: %s", h, bytes.TrimSpace([]byte(s)))
		}
	})
	return d
}

// sharedPage is a memory page the element process maps too.
func sharedPage() (*os.File, []byte, error) {
	fd, err := unix.MemfdCreate("smokemon-lab-delay", 0)
	if err != nil {
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), "smokemon-lab-delay")
	if err := f.Truncate(int64(os.Getpagesize())); err != nil {
		f.Close()
		return nil, nil, err
	}
	mem, err := unix.Mmap(fd, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, mem, nil
}

// openTUN creates a TUN device in h: it belongs to the namespace of the thread that
// opens /dev/net/tun.
func (h *Host) openTUN(name string) (*os.File, error) {
	var f *os.File
	err := h.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), name)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	})
	if err != nil && f != nil {
		f.Close()
	}
	return f, err
}

// runElement is the element process: fds 3 and 4 are the TUN devices, 5 the page.
func runElement() int {
	mem, err := unix.Mmap(5, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "delay element:", err)
		return 1
	}
	var wg sync.WaitGroup
	for i, fd := range []int{3, 4} {
		e := &element{
			fd:  fd,
			s:   (*slots)(unsafe.Pointer(&mem[uintptr(i)*unsafe.Sizeof(slots{})])),
			rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		}
		if e.wake, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			fmt.Fprintln(os.Stderr, "delay element:", err)
			return 1
		}
		unix.SetNonblock(fd, true)
		wg.Add(2)
		go func() { defer wg.Done(); e.reader() }()
		go func() { defer wg.Done(); e.releaser() }()
	}
	debug.SetGCPercent(-1)
	wg.Wait() // only on an error: the test kills the process
	return 1
}

// element is one direction inside the element process.
type element struct {
	fd   int // the TUN device
	wake int // eventfd: a packet due sooner than the one the releaser sleeps for
	s    *slots
	rng  *rand.Rand // reader thread only

	mu   sync.Mutex
	q    pktHeap
	seq  uint64
	free []*queued
}

// realtimeThread prepares the calling goroutine's thread for precise wake-ups.
func realtimeThread() {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10}, 0)
}

func (e *element) reader() {
	realtimeThread()
	fds := []unix.PollFd{{Fd: int32(e.fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Ppoll(fds, nil, nil); err != nil && err != unix.EINTR {
			fmt.Fprintln(os.Stderr, "delay element: ppoll:", err)
			return
		}
		for {
			q := e.get()
			n, err := unix.Read(e.fd, q.buf[:])
			if err != nil {
				e.put(q)
				break
			}
			q.n = n
			e.arrive(q, time.Now())
		}
	}
}

// get and put recycle packet buffers: the element allocates nothing per packet, so the
// garbage collector, which is off in the element process, never needs to run.
func (e *element) get() *queued {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := len(e.free); n > 0 {
		q := e.free[n-1]
		e.free = e.free[:n-1]
		return q
	}
	return new(queued)
}

func (e *element) put(q *queued) {
	e.mu.Lock()
	e.free = append(e.free, q)
	e.mu.Unlock()
}

func (e *element) arrive(q *queued, now time.Time) {
	p := loadParams(e.s)
	if p.Loss > 0 && e.rng.Float64() < p.Loss {
		e.s[slotDropped].Add(1)
		e.put(q)
		return
	}
	if !undoTTL(q.buf[:q.n]) {
		e.put(q)
		return
	}
	if p.Reorder > 0 && e.rng.Float64() < p.Reorder {
		e.s[slotReordered].Add(1)
		e.send(q.buf[:q.n])
		e.put(q)
		return
	}
	delay := p.Delay
	if p.Jitter > 0 {
		delay += time.Duration(e.rng.Int64N(int64(2*p.Jitter)+1)) - p.Jitter
	}
	q.at = now.Add(max(delay, 0))
	e.mu.Lock()
	e.seq++
	q.seq = e.seq
	heap.Push(&e.q, q)
	first := e.q[0] == q
	e.mu.Unlock()
	if first {
		one := uint64(1)
		unix.Write(e.wake, (*[8]byte)(unsafe.Pointer(&one))[:])
	}
}

func (e *element) send(pkt []byte) {
	if _, err := unix.Write(e.fd, pkt); err == nil {
		e.s[slotForwarded].Add(1)
	}
}

func (e *element) releaser() {
	realtimeThread()
	fds := []unix.PollFd{{Fd: int32(e.wake), Events: unix.POLLIN}}
	var drain [8]byte
	var due []*queued
	for {
		due = due[:0]
		var timeout *unix.Timespec
		e.mu.Lock()
		now := time.Now()
		for len(e.q) > 0 && !e.q[0].at.After(now) {
			due = append(due, heap.Pop(&e.q).(*queued))
		}
		if len(e.q) > 0 {
			ts := unix.NsecToTimespec(int64(e.q[0].at.Sub(now)))
			timeout = &ts
		}
		e.mu.Unlock()
		for _, q := range due {
			late := time.Since(q.at)
			e.send(q.buf[:q.n])
			e.put(q)
			b := 0
			for b < len(LateBounds) && late > LateBounds[b] {
				b++
			}
			e.s[slotLate+b].Add(1)
		}
		if len(due) > 0 {
			continue // sending took time; look again before sleeping
		}
		if _, err := unix.Ppoll(fds, timeout, nil); err != nil && err != unix.EINTR {
			fmt.Fprintln(os.Stderr, "delay element: ppoll:", err)
			return
		}
		if fds[0].Revents != 0 {
			unix.Read(e.wake, drain[:])
		}
	}
}

// undoTTL adds back the hop the kernel counts a second time when the packet re-enters
// from the TUN, fixing the IPv4 header checksum. It reports false for a packet that is
// not IP.
func undoTTL(pkt []byte) bool {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl || pkt[8] == 255 {
			return false
		}
		pkt[8]++
		pkt[10], pkt[11] = 0, 0
		var sum uint32
		for i := 0; i < ihl; i += 2 {
			sum += uint32(pkt[i])<<8 | uint32(pkt[i+1])
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		pkt[10], pkt[11] = byte(^sum>>8), byte(^sum)
		return true
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		if pkt[7] == 255 {
			return false
		}
		pkt[7]++
		return true
	}
	return false
}

type queued struct {
	at  time.Time
	seq uint64 // keeps packets with equal release times in arrival order
	n   int
	// A TUN device without offloads hands over packets no longer than its MTU, 1500
	// by default; a longer read is truncated and then fails the IP length check.
	buf [2048]byte
}

type pktHeap []*queued

func (h pktHeap) Len() int { return len(h) }
func (h pktHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h pktHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pktHeap) Push(x any)   { *h = append(*h, x.(*queued)) }
func (h *pktHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
