package status

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler serves /status: text by default, HTML for browsers (Accept:
// text/html, or ?format=html), JSON with ?format=json.
type Handler struct {
	Status *Status
	Now    func() time.Time
	// Before, if set, runs before each rendering: the exporter takes a
	// fresh sample of the host figures there.
	Before func()
	// Refresh is the HTML page's reload interval; ?refresh=N overrides it.
	Refresh time.Duration
}

func jsonEncode(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "text"
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			format = "html"
		}
	}
	refresh := max(int(h.Refresh/time.Second), 1)
	if v := r.URL.Query().Get("refresh"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3600 {
			http.Error(w, "refresh: want whole seconds from 1 to 3600", http.StatusBadRequest)
			return
		}
		refresh = n
	}
	if h.Before != nil {
		h.Before()
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	var buf bytes.Buffer
	var err error
	w.Header().Set("Cache-Control", "no-store")
	switch format {
	case "text":
		err = Text(&buf, h.Status.Report(now(), TextEvents))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	case "html":
		err = HTML(&buf, h.Status.Report(now(), MaxEvents), refresh)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case "json":
		err = jsonEncode(&buf, h.Status.Report(now(), MaxEvents))
		w.Header().Set("Content-Type", "application/json")
	default:
		http.Error(w, "format: want text, html or json", http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Vary", "Accept")
	w.Write(buf.Bytes())
}
