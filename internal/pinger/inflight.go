package pinger

import "github.com/smokemon/smokemon/internal/schedule"

// flight is one family's probes in flight, by sequence number. Every send
// and every reply looks a probe up: an array indexed by the 16-bit number
// costs one load where a map cost a hash and a probe of its groups (at
// 10 000 targets, a quarter of the engine's time outside its syscalls). It
// takes 512 KiB per family opened, of which only the pages the numbers in
// use reach are ever touched.
type flight struct {
	bySeq [1 << 16]*probe // nil: the number is free
	seq   uint16          // the number taken last
}

// take returns the next free sequence number after the last one taken. A
// number is busy until its probe's deadline has passed, so two probes in
// flight never share one; with 65536 numbers that only fails past 65536 in
// flight.
func (f *flight) take() (uint16, bool) {
	for range 1 << 16 {
		f.seq++
		if f.bySeq[f.seq] == nil {
			return f.seq, true
		}
	}
	return f.seq, false
}

// famIndex maps a family to its slot in the engine's per-family arrays.
func famIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

type expiry struct {
	deadline int64
	fam      Family
	seq      uint16
	serial   uint32
}

func (x expiry) Due() int64 { return x.deadline }

// expiryQueue orders probes in flight by deadline. Targets that share a
// timeout (all of them, in most configurations) are sent in deadline order,
// so their probes join a FIFO at no cost; only a probe due before the
// FIFO's newest (a target with a shorter timeout) goes to a heap. The heap
// alone cost a sift of log2(10 000) levels on every send and every expiry.
type expiryQueue struct {
	fifo []expiry
	head int
	heap schedule.Heap[expiry]
}

func (q *expiryQueue) Len() int { return len(q.fifo) - q.head + len(q.heap) }

func (q *expiryQueue) Push(x expiry) {
	if n := len(q.fifo); n == q.head || q.fifo[n-1].deadline <= x.deadline {
		if q.head > 0 && q.head == n {
			q.fifo, q.head = q.fifo[:0], 0
		}
		q.fifo = append(q.fifo, x)
		return
	}
	q.heap.Push(x)
}

// fromFIFO says whether the earliest deadline is at the FIFO's head; the
// queue must not be empty.
func (q *expiryQueue) fromFIFO() bool {
	if q.head == len(q.fifo) {
		return false
	}
	return len(q.heap) == 0 || q.fifo[q.head].deadline <= q.heap[0].deadline
}

// Peek is the earliest deadline; the queue must not be empty.
func (q *expiryQueue) Peek() int64 {
	if q.fromFIFO() {
		return q.fifo[q.head].deadline
	}
	return q.heap[0].deadline
}

// Pop removes and returns the probe due first; the queue must not be empty.
func (q *expiryQueue) Pop() expiry {
	if !q.fromFIFO() {
		return q.heap.Pop()
	}
	x := q.fifo[q.head]
	q.head++
	// Slide the live part down once the consumed part is the larger, so
	// the FIFO's memory stays bounded by twice the probes in flight.
	if live := len(q.fifo) - q.head; q.head >= 1024 && q.head > live {
		copy(q.fifo, q.fifo[q.head:])
		q.fifo, q.head = q.fifo[:live], 0
	}
	return x
}
