package lograte

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smokemon/smokemon/internal/testutil"
)

func TestServerErrorLogIsSlog(t *testing.T) {
	var buf bytes.Buffer
	l := ServerErrorLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	l.Printf("http: TLS handshake error from %s: %v", "127.0.0.1:40000", "EOF")
	l.Printf("http: Accept error: %v; retrying in %v", "too many open files", "5ms")
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		recs = append(recs, m)
	}
	if len(recs) != 2 || recs[0]["msg"] != "TLS handshake failed" || recs[0]["level"] != "WARN" ||
		recs[0]["remote"] != "127.0.0.1:40000" || recs[0]["err"] != "EOF" {
		t.Errorf("handshake record %v", recs[0])
	}
	if len(recs) == 2 && (recs[1]["level"] != "ERROR" || !strings.HasPrefix(recs[1]["err"].(string), "Accept error: too many open files")) {
		t.Errorf("other record %v", recs[1])
	}
}

func TestScrapeErrorLog(t *testing.T) {
	var buf bytes.Buffer
	l := ScrapeErrorLog{slog.New(slog.NewTextHandler(&buf, nil))}
	gone := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
	reset := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	l.Println("error encoding and sending metric family:", gone)
	l.Println("error encoding and sending metric family:", reset)
	if buf.Len() != 0 {
		t.Errorf("a client that hung up was logged by promhttp's ErrorLog:\n%s", &buf)
	}
	l.Println("error gathering metrics:", errors.New("collected metric x was collected before"))
	want := `level=ERROR msg="error gathering metrics" err="collected metric x was collected before"`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("got %q, want %s", &buf, want)
	}
}

// A client that hangs up while the answer is written: promhttp calls its
// ErrorLog on every family it then fails to write; the log gets one line.
func TestLogDisconnectsOneLinePerRequest(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := make(chan int, 1)
	srv := httptest.NewServer(LogDisconnects(logger, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		el := ScrapeErrorLog{Logger: logger}
		failed := 0
		chunk := bytes.Repeat([]byte("x"), 1024)
		for range 4096 { // 4 MB, far more than the sockets hold
			if _, err := rw.Write(chunk); err != nil {
				el.Println("error encoding and sending metric family:", err)
				failed++
			}
		}
		done <- failed
	})))
	defer srv.Close()
	if _, err := testutil.HangUp(strings.TrimPrefix(srv.URL, "http://"), "/metrics", 4096); err != nil {
		t.Fatal(err)
	}
	failed := <-done
	var out string
	testutil.Eventually(2*time.Second, 10*time.Millisecond, func() bool { // written once the handler has returned
		mu.Lock()
		defer mu.Unlock()
		out = buf.String()
		return out != ""
	})
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	out = buf.String()
	mu.Unlock()
	if failed < 2 {
		t.Fatalf("%d failed writes after the hang-up: the test did not hang up mid-answer", failed)
	}
	if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, `level=DEBUG msg="scrape client went away before the answer was written"`) {
		t.Errorf("%d failed writes logged as:\n%s\nwant one debug line", failed, out)
	}
}
