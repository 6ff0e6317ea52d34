package schedule

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type at int64

func (a at) Due() int64 { return int64(a) }

func TestPopsInOrder(t *testing.T) {
	var h Heap[at]
	var want []int64
	for range 1000 {
		v := rand.Int64N(500) // with duplicates
		h.Push(at(v))
		want = append(want, v)
		if rand.IntN(4) == 0 { // interleave pops with pushes
			slices.Sort(want)
			if got := h.Pop(); int64(got) != want[0] {
				t.Fatalf("popped %d, want %d", got, want[0])
			}
			want = want[1:]
		}
	}
	slices.Sort(want)
	for _, w := range want {
		if got := h.Pop(); int64(got) != w {
			t.Fatalf("popped %d, want %d", got, w)
		}
	}
	if len(h) != 0 {
		t.Fatalf("%d left", len(h))
	}
}

func BenchmarkPushPop(b *testing.B) {
	var h Heap[at]
	b.ReportAllocs()
	for i := range b.N {
		h.Push(at(i % 97))
		if len(h) > 64 {
			h.Pop()
		}
	}
}
