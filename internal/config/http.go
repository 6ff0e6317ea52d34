package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// HTTPConfig is the http section: HTTP(S) probes with phase timings. Off (no targets) unless configured.
type HTTPConfig struct {
	// Interval and Timeout are this section's defaults. They do not follow
	// global.interval: that is the ping cadence, far too often for a fresh
	// TCP+TLS connection per probe.
	Interval     Duration     `yaml:"interval"`
	Timeout      Duration     `yaml:"timeout"`
	MaxBodyBytes int64        `yaml:"max_body_bytes"`
	Targets      []HTTPTarget `yaml:"targets"`
}

// HTTPTarget is one URL to probe.
type HTTPTarget struct {
	URL          string            `yaml:"url"`
	Name         string            `yaml:"name"` // series name; the URL when unset
	Labels       map[string]string `yaml:"labels"`
	ServiceProbe `yaml:",inline"`

	Method string `yaml:"method"` // GET unless set
	// ValidStatusCodes are the statuses that count as success; empty means any 2xx.
	ValidStatusCodes []int             `yaml:"valid_status_codes"`
	Headers          map[string]string `yaml:"headers"`
	FollowRedirects  *bool             `yaml:"follow_redirects"` // true unless set
	TLS              TLSSettings       `yaml:"tls"`
	MaxBodyBytes     int64             `yaml:"max_body_bytes"`
}

// TLSSettings configure certificate checking of an HTTPS probe.
type TLSSettings struct {
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	CAFile             string `yaml:"ca_file"` // PEM bundle trusted instead of the system roots
	ServerName         string `yaml:"server_name"`

	// caPEM is ca_file's content, read once when the config is parsed, so
	// a reload never meets a file that changed or vanished after
	// validation. Bytes rather than a pool: collectors compare target
	// settings with reflect.DeepEqual, and a CertPool holds funcs.
	caPEM []byte
}

// ClientConfig is the tls.Config of these settings, with ca_file's
// certificates (as parsed) as the roots when one is set.
func (t TLSSettings) ClientConfig() *tls.Config {
	tc := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, ServerName: t.ServerName}
	if t.caPEM != nil {
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AppendCertsFromPEM(t.caPEM) // checked when parsed
	}
	return tc
}

// Defaults of the http section.
const (
	DefaultHTTPInterval = 30 * time.Second
	DefaultHTTPTimeout  = 10 * time.Second
	DefaultMaxBodyBytes = 10 << 20
)

// DefaultHTTP holds the http section's defaults (see fillDefaults).
var DefaultHTTP = HTTPConfig{Interval: Duration(DefaultHTTPInterval), Timeout: Duration(DefaultHTTPTimeout), MaxBodyBytes: DefaultMaxBodyBytes}

func (c *HTTPConfig) validate(g *Global, add adder) {
	fillSection(c, &DefaultHTTP, &c.Interval, &c.Timeout)
	if c.MaxBodyBytes < 0 {
		add("http.max_body_bytes", "%d is negative", c.MaxBodyBytes)
	}
	checkSchedule("http", c.Interval, c.Timeout, time.Duration(c.Interval), "the interval", add)
	if len(c.Targets) > 0 {
		checkOwnLabels("global.labels", g.Labels, httpLabels, add)
	}
	names := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("http.targets[%d]", i)
		checkURL(p+".url", t.URL, add)
		if t.Name == "" {
			t.Name = t.URL
		}
		uniqueName("http.targets", i, t.Name, names, add)
		checkLabels(p+".labels", t.Labels, httpLabels, add)
		t.ServiceProbe.fill(p, g, c.Interval, c.Timeout, add)
		if t.Method == "" {
			t.Method = http.MethodGet
		} else if !validToken(t.Method) {
			add(p+".method", "%q is not an HTTP method", t.Method)
		}
		for j, s := range t.ValidStatusCodes {
			if s < 100 || s > 599 {
				add(fmt.Sprintf("%s.valid_status_codes[%d]", p, j), "%d is not an HTTP status code (100 to 599)", s)
			}
		}
		for k := range t.Headers {
			if !validToken(k) {
				add(p+".headers."+k, "%q is not a valid header name", k)
			}
		}
		if t.FollowRedirects == nil {
			yes := true
			t.FollowRedirects = &yes
		}
		t.TLS.check(p+".tls", add)
		if t.MaxBodyBytes == 0 {
			t.MaxBodyBytes = c.MaxBodyBytes
		} else if t.MaxBodyBytes < 0 {
			add(p+".max_body_bytes", "%d is negative", t.MaxBodyBytes)
		}
	}
}

var httpLabels = ownLabels{"http", []string{"phase", "version", "cipher", "url", "ip"}}

// NormalizeResolver turns "ip" or "ip:port" into "ip:port" (port 53 by default).
func NormalizeResolver(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(a.String(), "53"), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("%q is not a resolver address (ip or ip:port, e.g. 9.9.9.9 or [2620:fe::fe]:53)", s)
	}
	return ap.String(), nil
}

func (t *TLSSettings) check(path string, add adder) {
	if t.CAFile == "" {
		return
	}
	if t.InsecureSkipVerify {
		add(path+".ca_file", "set ca_file or insecure_skip_verify, not both")
	}
	data, err := os.ReadFile(t.CAFile)
	if err != nil {
		add(path+".ca_file", "%v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		add(path+".ca_file", "%s holds no PEM certificate", t.CAFile)
		return
	}
	t.caPEM = data
}

func checkURL(path, v string, add adder) {
	u, err := url.Parse(v)
	switch {
	case v == "":
		add(path, "missing: every target needs a url")
	case err != nil || !u.IsAbs() || u.Host == "":
		add(path, "%q is not an absolute URL", v)
	case u.Scheme != "http" && u.Scheme != "https":
		add(path, "%q: scheme %q is not http or https", v, u.Scheme)
	case !validHost(u.Hostname()) || u.Hostname() == GatewayKeyword:
		add(path, "%q: %q is neither an IP address nor a valid host name", v, u.Hostname())
	case u.Port() != "":
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			add(path, "%q: port %q is out of range", v, u.Port())
		}
	}
}

// validToken is RFC 9110's token, the syntax of methods and header names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}
