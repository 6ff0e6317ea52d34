// Package deadline is a min-heap of things that fall due, for the probe
// engines' "in flight until" bookkeeping. It is typed rather than built on
// container/heap, whose interface boxing would cost an allocation per probe.
package schedule

// Item is anything with a due time (the engines use monotonic nanoseconds).
type Item interface{ Due() int64 }

// Heap keeps the earliest due item at index 0.
type Heap[T Item] []T

// Push adds x.
func (h *Heap[T]) Push(x T) {
	*h = append(*h, x)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p].Due() <= q[i].Due() {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

// Pop removes and returns the earliest item; the heap must not be empty.
func (h *Heap[T]) Pop() T {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(q) && q[l].Due() < q[m].Due() {
			m = l
		}
		if r := l + 1; r < len(q) && q[r].Due() < q[m].Due() {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}
