package lograte

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
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
