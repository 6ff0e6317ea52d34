package config

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// SyntheticConfig is the synthetic section: captive-portal and DNS-over-HTTPS checks. Off (no targets) unless configured.
type SyntheticConfig struct {
	Interval      Duration              `yaml:"interval"`
	Timeout       Duration              `yaml:"timeout"`
	CaptivePortal []CaptivePortalTarget `yaml:"captive_portal"`
	DoH           []DoHTarget           `yaml:"doh"`
}

// CaptivePortalTarget is a connectivity-check URL: anything but the expected
// answer (a redirect, another status, other content) means a portal is in the way.
type CaptivePortalTarget struct {
	URL            string            `yaml:"url"`
	Name           string            `yaml:"name"`
	Labels         map[string]string `yaml:"labels"`
	ServiceProbe   `yaml:",inline"`
	ExpectedStatus int         `yaml:"expected_status"` // 204 unless set
	ExpectedBody   string      `yaml:"expected_body"`   // a substring the body must hold; empty skips the check
	TLS            TLSSettings `yaml:"tls"`
}

// DoHTarget is an RFC 8484 DNS-over-HTTPS lookup.
type DoHTarget struct {
	URL          string            `yaml:"url"` // e.g. https://dns.example/dns-query
	Name         string            `yaml:"name"`
	Labels       map[string]string `yaml:"labels"`
	ServiceProbe `yaml:",inline"`
	Query        string      `yaml:"query"`
	Type         string      `yaml:"type"`   // A unless set
	Method       string      `yaml:"method"` // POST unless set, or GET (?dns=base64url)
	TLS          TLSSettings `yaml:"tls"`

	QType uint16 `yaml:"-"`
}

// Defaults of the synthetic section.
const (
	DefaultSyntheticIvl     = time.Minute
	DefaultSyntheticTimeout = 10 * time.Second
)

// DefaultSynthetic, DefaultCaptivePortal and DefaultDoH hold the defaults
// (see fillDefaults).
var (
	DefaultSynthetic     = SyntheticConfig{Interval: Duration(DefaultSyntheticIvl), Timeout: Duration(DefaultSyntheticTimeout)}
	DefaultCaptivePortal = CaptivePortalTarget{ExpectedStatus: http.StatusNoContent}
	DefaultDoH           = DoHTarget{Type: "A", Method: http.MethodPost}
)

func (c *SyntheticConfig) validate(g *Global, add adder) {
	fillSection(c, &DefaultSynthetic, &c.Interval, &c.Timeout)
	checkSchedule("synthetic", c.Interval, c.Timeout, time.Duration(c.Interval), "the interval", add)
	names := map[string]int{}
	for i := range c.CaptivePortal {
		t := &c.CaptivePortal[i]
		p := fmt.Sprintf("synthetic.captive_portal[%d]", i)
		fillDefaults(t, &DefaultCaptivePortal)
		checkURL(p+".url", t.URL, add)
		if t.Name == "" {
			t.Name = t.URL
		}
		uniqueName("synthetic.captive_portal", i, t.Name, names, add)
		checkLabels(p+".labels", t.Labels, ownLabels{}, add)
		t.ServiceProbe.fill(p, g, c.Interval, c.Timeout, add)
		if t.ExpectedStatus < 100 || t.ExpectedStatus > 599 {
			add(p+".expected_status", "%d is not an HTTP status code (100 to 599)", t.ExpectedStatus)
		}
		t.TLS.check(p+".tls", add)
	}
	names = map[string]int{}
	for i := range c.DoH {
		t := &c.DoH[i]
		p := fmt.Sprintf("synthetic.doh[%d]", i)
		fillDefaults(t, &DefaultDoH)
		checkURL(p+".url", t.URL, add)
		if t.URL != "" && !strings.HasPrefix(t.URL, "https://") {
			add(p+".url", "%q: DNS-over-HTTPS needs an https URL", t.URL)
		}
		if t.Name == "" {
			t.Name = t.URL
		}
		uniqueName("synthetic.doh", i, t.Name, names, add)
		checkLabels(p+".labels", t.Labels, ownLabels{}, add)
		t.ServiceProbe.fill(p, g, c.Interval, c.Timeout, add)
		t.QType = checkQuestion(p, "a DoH check needs a name to look up", t.Query, &t.Type, add)
		switch strings.ToUpper(t.Method) {
		case http.MethodPost, http.MethodGet:
			t.Method = strings.ToUpper(t.Method)
		default:
			add(p+".method", "%q is not POST or GET (RFC 8484)", t.Method)
		}
		t.TLS.check(p+".tls", add)
	}
}
