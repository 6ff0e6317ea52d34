package config

import (
	"testing"
	"time"
)

func TestSyntheticDefaults(t *testing.T) {
	c, err := Parse([]byte(`
synthetic:
  captive_portal:
    - url: http://connectivitycheck.example/generate_204
  doh:
    - {url: "https://dns.example/dns-query", query: example.com}
    - {url: "https://dns.example/dns-query", name: get, method: get, query: example.com, type: aaaa, interval: 5m, timeout: 3s}
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Synthetic.CaptivePortal[0]
	if p.ExpectedStatus != 204 || p.IntervalD() != DefaultSyntheticIvl || p.TimeoutD() != DefaultSyntheticTimeout || p.Name != p.URL {
		t.Errorf("portal defaults: %+v", p)
	}
	a, b := c.Synthetic.DoH[0], c.Synthetic.DoH[1]
	if a.Method != "POST" || a.Type != "A" || a.QType != 1 {
		t.Errorf("doh defaults: %+v", a)
	}
	if b.Method != "GET" || b.QType != 28 || b.IntervalD() != 5*time.Minute || b.TimeoutD() != 3*time.Second {
		t.Errorf("doh overrides: %+v", b)
	}
	if c2, _ := Parse(nil, "empty"); len(c2.Synthetic.CaptivePortal)+len(c2.Synthetic.DoH) != 0 {
		t.Error("synthetic checks configured by default; they are opt-in")
	}
}

func TestSyntheticErrors(t *testing.T) {
	wantErrs(t, `
synthetic:
  captive_portal:
    - {url: "http://x/", expected_status: 999}
  doh:
    - {url: "http://dns.example/dns-query", query: example.com}
    - {url: "https://dns.example/dns-query", method: PUT, type: BOGUS}
`,
		`t.yml:4: synthetic.captive_portal[0].expected_status: 999 is not an HTTP status code`,
		`synthetic.doh[0].url: "http://dns.example/dns-query": DNS-over-HTTPS needs an https URL`,
		`synthetic.doh[1].method: "PUT" is not POST or GET`,
		`synthetic.doh[1].query: missing`,
		`synthetic.doh[1].type: "BOGUS" is not a DNS record type`,
	)
}
