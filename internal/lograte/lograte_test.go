package lograte

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a hand-moved time for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newText(level slog.Level) (*Handler, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1e9, 0)}
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}), 3, time.Minute, SuppressedCounter("test", "x"))
	h.l.now = c.now
	return h, &buf, c
}

func lines(b *bytes.Buffer) []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestBurstThenDropAndCount(t *testing.T) {
	h, buf, c := newText(slog.LevelDebug)
	log := slog.New(h)
	for i := range 20 {
		log.Error("write failed", "i", i)
	}
	log.Warn("write failed") // another level: its own budget
	log.Error("other thing")
	got := lines(buf)
	if len(got) != 5 {
		t.Fatalf("%d lines, want 3 + 1 + 1:\n%s", len(got), buf)
	}
	for i, l := range got[:3] {
		if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, fmt.Sprintf("i=%d", i)) {
			t.Errorf("line %d: %s", i, l)
		}
	}
	if v := testutil.ToFloat64(h.l.suppressed.WithLabelValues("error")); v != 17 {
		t.Errorf("suppressed{level=error} = %v, want 17", v)
	}
	if v := testutil.ToFloat64(h.l.suppressed.WithLabelValues("warn")); v != 0 {
		t.Errorf("suppressed{level=warn} = %v, want 0", v)
	}

	// Within the interval still dropped; after it, the next one passes and
	// says how many were lost.
	c.t = c.t.Add(59 * time.Second)
	log.Error("write failed", "i", 20)
	c.t = c.t.Add(time.Second)
	buf.Reset()
	log.Error("write failed", "i", 21)
	log.Error("write failed", "i", 22)
	got = lines(buf)
	if len(got) != 2 || !strings.Contains(got[0], "i=21 suppressed=18") || strings.Contains(got[1], "suppressed") {
		t.Errorf("after the interval:\n%s\nwant i=21 with suppressed=18, then i=22 without", buf)
	}
}

func TestJSONAndDerivedLoggersShareTheLimit(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1e9, 0)}
	counter := SuppressedCounter("test", "x")
	h := New(slog.NewJSONHandler(&buf, nil), 2, time.Second, counter)
	h.l.now = c.now
	base := slog.New(h)
	a := base.With("component", "a")
	b := base.WithGroup("g").With("component", "b")
	a.Warn("same")
	b.Warn("same")
	a.Warn("same")
	b.Warn("same")
	c.t = c.t.Add(time.Second)
	b.Warn("same")
	var recs []map[string]any
	for _, l := range lines(&buf) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3:\n%s", len(recs), &buf)
	}
	if recs[0]["component"] != "a" || recs[1]["g"].(map[string]any)["component"] != "b" {
		t.Errorf("attrs and groups of the derived loggers lost: %v", recs[:2])
	}
	// The attr added on the passing record lands in the record's group.
	if g := recs[2]["g"].(map[string]any); g["suppressed"] != 2.0 {
		t.Errorf("third record %v, want suppressed=2", recs[2])
	}
	if v := testutil.ToFloat64(counter.WithLabelValues("warn")); v != 2 {
		t.Errorf("suppressed{level=warn} = %v, want 2", v)
	}
}

func TestDisabledLevelsAreNotCounted(t *testing.T) {
	h, buf, _ := newText(slog.LevelInfo)
	log := slog.New(h)
	for range 10 {
		log.Debug("noise")
	}
	if buf.Len() != 0 {
		t.Errorf("debug written at level info:\n%s", buf)
	}
	if v := testutil.ToFloat64(h.l.suppressed.WithLabelValues("debug")); v != 0 {
		t.Errorf("suppressed{level=debug} = %v, want 0: records the next handler would not write are not suppressed ones", v)
	}
}

func TestNoLimit(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(New(slog.NewTextHandler(&buf, nil), 0, time.Minute, nil))
	for range 50 {
		log.Info("again")
	}
	if n := len(lines(&buf)); n != 50 {
		t.Errorf("%d lines with the limit off, want 50", n)
	}
}

func TestManyDistinctMessagesStayBounded(t *testing.T) {
	h, _, _ := newText(slog.LevelInfo)
	log := slog.New(h)
	for i := range 3 * maxKeys {
		log.Info(fmt.Sprintf("message %d", i))
	}
	if n := len(h.l.windows); n > maxKeys {
		t.Errorf("%d messages remembered, want at most %d", n, maxKeys)
	}
}

func TestConcurrent(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	counter := SuppressedCounter("test", "x")
	log := slog.New(New(slog.NewTextHandler(w, nil), 5, time.Hour, counter))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				log.Error("storm")
			}
		}()
	}
	wg.Wait()
	if n := len(lines(&buf)); n != 5 {
		t.Errorf("%d lines, want 5", n)
	}
	if v := testutil.ToFloat64(counter.WithLabelValues("error")); v != 795 {
		t.Errorf("suppressed = %v, want 795", v)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestKeyAttrs(t *testing.T) {
	var buf bytes.Buffer
	counter := SuppressedCounter("test", "x")
	log := slog.New(New(slog.NewTextHandler(&buf, nil), 2, time.Hour, counter, "collector"))
	for range 5 {
		log.Error("collector failed", "collector", "cpu", "err", "boom")
	}
	log.Error("collector failed", "collector", "thermal", "err", "stuck")
	log.Error("collector failed", "err", "no collector attr")
	got := lines(&buf)
	if len(got) != 4 || !strings.Contains(got[2], "collector=thermal") || !strings.Contains(got[3], "no collector attr") {
		t.Errorf("a noisy collector hid another's failure:\n%s", &buf)
	}
	if v := testutil.ToFloat64(counter.WithLabelValues("error")); v != 3 {
		t.Errorf("suppressed = %v, want 3", v)
	}
}
