package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wantErrs parses y and checks that every want fragment appears in the error.
func wantErrs(t *testing.T, y string, want ...string) {
	t.Helper()
	_, err := Parse([]byte(y), "t.yml")
	if err == nil {
		t.Fatalf("no error for:\n%s", y)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestHTTPDefaultsAndInheritance(t *testing.T) {
	c, err := Parse([]byte(`
global: {interval: 1s, family: ip6}
http:
  timeout: 3s
  targets:
    - url: https://example.com/
    - url: http://198.18.0.1:8080/health
      name: health
      interval: 2s
      method: HEAD
      valid_status_codes: [200, 204]
      follow_redirects: false
      headers: {User-Agent: smokemon}
      resolver: 198.18.0.53
      max_body_bytes: 100
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.HTTP.Targets[0], c.HTTP.Targets[1]
	if a.Name != "https://example.com/" || a.IntervalD() != DefaultHTTPInterval || a.TimeoutD() != 3*time.Second ||
		a.Method != "GET" || !*a.FollowRedirects || a.MaxBodyBytes != DefaultMaxBodyBytes || a.Family != FamilyIP6 || a.Resolver != "" {
		t.Errorf("defaults: %+v", a)
	}
	if b.IntervalD() != 2*time.Second || b.TimeoutD() != 2*time.Second || *b.FollowRedirects || b.Resolver != "198.18.0.53:53" || b.MaxBodyBytes != 100 {
		t.Errorf("overrides: %+v", b)
	}
}

func TestHTTPErrors(t *testing.T) {
	wantErrs(t, `
global: {labels: {phase: x}}
http:
  targets:
    - {url: "ftp://example.com/"}
    - {url: "example.com"}
    - {url: "https://a/", name: dup, method: "GE T", valid_status_codes: [99], timeout: 40s, interval: 50s}
    - {url: "https://b/", name: dup, family: both, resolver: "not-an-ip", labels: {url: x}}
    - {url: "https://c/", tls: {ca_file: /nonexistent.pem}}
`,
		`t.yml:2: global.labels.phase: label "phase" is reserved`,
		`t.yml:5: http.targets[0].url: "ftp://example.com/": scheme "ftp" is not http or https`,
		`http.targets[1].url: "example.com" is not an absolute URL`,
		`http.targets[2].method: "GE T" is not an HTTP method`,
		`http.targets[2].valid_status_codes[0]: 99 is not an HTTP status code`,
		`http.targets[2].timeout: 40s is above the maximum of 30s`,
		`t.yml:8: http.targets[3].name: "dup" is already the name of http.targets[2]`,
		`http.targets[3].family: "both" is not one of auto, ip4, ip6`,
		`http.targets[3].resolver: "not-an-ip" is not a resolver address`,
		`http.targets[3].labels.url: label "url" is reserved`,
		`http.targets[4].tls.ca_file: open /nonexistent.pem`,
	)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o644)
	wantErrs(t, "http:\n  targets:\n    - {url: \"https://c/\", tls: {ca_file: "+bad+", insecure_skip_verify: true}}\n",
		"holds no PEM certificate", "set ca_file or insecure_skip_verify, not both")
	wantErrs(t, "http: {interval: 1s, timeout: 2s}\n", "http.timeout: 2s is longer than the interval")
	wantErrs(t, "http: {tragets: []}\n", "tragets")
}
