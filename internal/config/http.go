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

// ServiceProbe holds the settings every http, dns, tcp and synthetic target
// shares: its schedule and how it finds its address.
type ServiceProbe struct {
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Family   Family   `yaml:"family"` // auto (IPv4 first), ip4 or ip6
	// Resolver is a DNS server (ip or ip:port) for the target's host name;
	// empty means the nameservers of /etc/resolv.conf (under --path.rootfs).
	Resolver string `yaml:"resolver"`
}

// IntervalD and TimeoutD are the resolved schedule, valid after Load.
func (p *ServiceProbe) IntervalD() time.Duration { return time.Duration(p.Interval) }
func (p *ServiceProbe) TimeoutD() time.Duration  { return time.Duration(p.Timeout) }

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

// Section defaults of the service probes.
const (
	DefaultHTTPInterval     = 30 * time.Second
	DefaultHTTPTimeout      = 10 * time.Second
	DefaultMaxBodyBytes     = 10 << 20
	DefaultDNSInterval      = 30 * time.Second
	DefaultDNSTimeout       = 5 * time.Second
	DefaultTCPInterval      = 10 * time.Second
	DefaultTCPTimeout       = 5 * time.Second
	DefaultSyntheticIvl     = time.Minute
	DefaultSyntheticTimeout = 10 * time.Second
)

func (c *HTTPConfig) validate(g *Global, add adder) {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	} else if c.MaxBodyBytes < 0 {
		add("http.max_body_bytes", "%d is negative", c.MaxBodyBytes)
	}
	checkSection("http", &c.Interval, &c.Timeout, DefaultHTTPInterval, DefaultHTTPTimeout, add)
	if len(c.Targets) > 0 {
		checkReservedFor("global.labels", g.Labels, httpLabelNames, add)
	}
	names := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("http.targets[%d]", i)
		checkURL(p+".url", t.URL, add)
		if t.Name == "" {
			t.Name = t.URL
		}
		uniqueName("http", p, t.Name, names, i, add)
		checkLabels(p+".labels", t.Labels, add)
		checkReservedFor(p+".labels", t.Labels, httpLabelNames, add)
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

// Labels the http collector sets itself.
var httpLabelNames = []string{"phase", "version", "cipher", "url", "ip"}

// checkSection fills a section's interval and timeout defaults and checks them.
func checkSection(sec string, iv, to *Duration, defIv, defTo time.Duration, add adder) {
	if *iv == 0 {
		*iv = Duration(defIv)
	}
	if *to == 0 {
		*to = Duration(min(defTo, time.Duration(*iv)))
	}
	checkSchedule(sec, *iv, *to, add)
}

func checkSchedule(path string, iv, to Duration, add adder) {
	switch {
	case time.Duration(iv) < MinInterval:
		add(path+".interval", "%s is below the minimum of %s", time.Duration(iv), MinInterval)
	case to > iv:
		add(path+".timeout", "%s is longer than the interval (%s): a probe must finish before the next one starts", time.Duration(to), time.Duration(iv))
	case time.Duration(to) > MaxTimeout:
		add(path+".timeout", "%s is above the maximum of %s", time.Duration(to), MaxTimeout)
	case time.Duration(to) < time.Millisecond:
		add(path+".timeout", "%s is too short to measure anything", time.Duration(to))
	}
}

// fill inherits the section's schedule and the global family, then checks.
func (p *ServiceProbe) fill(path string, g *Global, iv, to Duration, add adder) {
	if p.Interval == 0 {
		p.Interval = iv
	}
	if p.Timeout == 0 {
		p.Timeout = Duration(min(time.Duration(to), time.Duration(p.Interval)))
	}
	checkSchedule(path, p.Interval, p.Timeout, add)
	if p.Family == "" {
		p.Family = g.Family
		if p.Family == FamilyBoth {
			p.Family = FamilyAuto
		}
	}
	switch p.Family {
	case FamilyAuto, FamilyIP4, FamilyIP6:
	default:
		add(path+".family", "%q is not one of auto, ip4, ip6", p.Family)
	}
	if p.Resolver != "" {
		if r, err := NormalizeResolver(p.Resolver); err != nil {
			add(path+".resolver", "%v", err)
		} else {
			p.Resolver = r
		}
	}
}

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

func uniqueName(sec, path, name string, names map[string]int, i int, add adder) {
	if j, dup := names[name]; dup {
		add(path+".name", "%q is already the name of %s.targets[%d]; names must be unique (set name: to tell them apart)", name, sec, j)
		return
	}
	names[name] = i
}

// checkReservedFor rejects custom labels that a collector sets itself.
func checkReservedFor(path string, labels map[string]string, reserved []string, add adder) {
	for _, r := range reserved {
		if _, ok := labels[r]; ok {
			add(path+"."+r, "label %q is reserved: the exporter sets it on these metrics", r)
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
