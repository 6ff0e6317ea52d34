package config

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The checks every section shares: one way to check names, labels,
// schedules, ranges and addresses, and one way to fill in defaults.

// fieldError is a validation error at a field path such as "http.targets[2].url".
type fieldError struct{ path, msg string }

// adder records a validation error at a field path.
type adder func(path, format string, a ...any)

// fillDefaults sets every field of dst left zero (unset in the file) to the
// same field of def: the section's defaults are data (DefaultX values), not
// code. Zero means unset, so "interval: 0s" takes the default as it always
// has. Slices and pointers are copied, so a target that rewrites its own
// list in place cannot change the defaults. Defaults are not applied by
// UnmarshalYAML (blackbox_exporter's `*s = DefaultX; unmarshal(plain)`):
// yaml.v3 hands an UnmarshalYAML a decoder without KnownFields, and unknown
// fields inside targets would then pass unreported.
func fillDefaults[T any](dst *T, def *T) {
	fillValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(def).Elem())
}

func fillValue(dst, def reflect.Value) {
	for i := range dst.NumField() {
		d, v := dst.Field(i), def.Field(i)
		if !d.CanSet() || v.IsZero() {
			continue
		}
		if d.Kind() == reflect.Struct {
			fillValue(d, v) // an inlined ProbeDefaults, ServiceProbe
			continue
		}
		if !d.IsZero() && (d.Kind() != reflect.Slice || d.Len() > 0) {
			continue // set; an empty list ("protocols: []") is unset
		}
		switch v.Kind() {
		case reflect.Slice:
			d.Set(reflect.AppendSlice(reflect.MakeSlice(v.Type(), 0, v.Len()), v))
		case reflect.Pointer:
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(v.Elem())
			d.Set(p)
		default:
			d.Set(v)
		}
	}
}

func intp(v int) *int           { return &v }
func boolp(v bool) *bool        { return &v }
func durp(v Duration) *Duration { return &v }

// uniqueName records a target's name and refuses one that list (the
// targets' path, e.g. "http.targets") already has.
func uniqueName(list string, i int, name string, names map[string]int, add adder) {
	if j, dup := names[name]; dup {
		add(fmt.Sprintf("%s[%d].name", list, i), "%q is already the name of %s[%d]; names must be unique (set name: to tell them apart)", name, list, j)
		return
	}
	names[name] = i
}

var (
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// Reserved labels are set by the exporter itself or by Prometheus.
	reservedLabels = map[string]bool{
		"target": true, "family": true, "ip": true, "host": true, "job": true,
		"instance": true, "collector": true, "node": true, "reason": true,
		"le": true, "quantile": true,
	}
)

// ownLabels are the labels a section's collector sets on its metrics:
// custom labels must not reuse them.
type ownLabels struct {
	collector string
	names     []string
}

// checkLabels checks custom labels: valid Prometheus names, none of the
// names the exporter or Prometheus set, none of the collector's own.
func checkLabels(path string, labels map[string]string, own ownLabels, add adder) {
	for k := range labels {
		switch {
		case !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__"):
			add(path+"."+k, "%q is not a valid Prometheus label name", k)
		case reservedLabels[k]:
			add(path+"."+k, "label %q is reserved: the exporter or Prometheus sets it", k)
		}
	}
	checkOwnLabels(path, labels, own, add)
}

// checkOwnLabels refuses the collector's own labels among labels: the
// targets' custom ones, or global.labels when the section has targets
// (checkLabels has checked them already).
func checkOwnLabels(path string, labels map[string]string, own ownLabels, add adder) {
	for _, r := range own.names {
		if _, ok := labels[r]; ok && !reservedLabels[r] { // those are refused already
			add(path+"."+r, "label %q is reserved: the %s collector sets it on its metrics", r, own.collector)
		}
	}
}

// checkSchedule checks a probe's interval and timeout: the interval at least
// MinInterval; a timeout that is set at most bound (the interval, or mtr's
// sweep spacing, called boundIs in the message; 0: no bound, as for mesh,
// whose probes overlap), at most MaxTimeout and at least 1ms.
func checkSchedule(path string, iv, to Duration, bound time.Duration, boundIs string, add adder) {
	if v := time.Duration(iv); v < MinInterval {
		add(path+".interval", "%s is below the minimum of %s", v, MinInterval)
	}
	switch t := time.Duration(to); {
	case t == 0:
	case bound > 0 && t > bound:
		add(path+".timeout", "%s is longer than %s (%s): a probe must be answered or lost before the next one", t, boundIs, bound)
	case t > MaxTimeout:
		add(path+".timeout", "%s is above the maximum of %s", t, MaxTimeout)
	case t < time.Millisecond:
		add(path+".timeout", "%s is too short to measure anything", t)
	}
}

// checkRange refuses a number or duration outside lo to hi; unit, when
// given, names what is counted ("streams").
func checkRange[T int | time.Duration](path string, v, lo, hi T, unit string, add adder) {
	if v < lo || v > hi {
		if unit != "" {
			unit = " " + unit
		}
		add(path, "%v is out of range (%v to %v%s)", short(v), short(lo), short(hi), unit)
	}
}

// short writes a duration as a person would: 1m, not 1m0s.
func short(v any) any {
	d, ok := v.(time.Duration)
	if !ok {
		return v
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// checkOneOf refuses a value not in allowed.
func checkOneOf(path, v string, allowed []string, add adder) bool {
	if !slices.Contains(allowed, v) {
		if len(allowed) == 2 {
			add(path, "%q is not %s or %s", v, allowed[0], allowed[1])
		} else {
			add(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
		return false
	}
	return true
}

// checkList checks a list of choices: each one of allowed, none twice.
func checkList(path string, vs, allowed []string, add adder) {
	seen := map[string]bool{}
	for i, v := range vs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if checkOneOf(p, v, allowed, add) && seen[v] {
			add(p, "%q is listed twice", v)
		}
		seen[v] = true
	}
}

// checkHostPort checks a host:port address (IPv6 literals in brackets, as
// in example); missing says what the address is for.
func checkHostPort(path, addr, missing, example string, add adder) {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case addr == "":
		add(path, "missing: %s", missing)
	case err != nil:
		add(path, "%q is not host:port (IPv6 literals in brackets: %s)", addr, example)
	case !validHost(host) || host == GatewayKeyword:
		add(path, "%q: %q is neither an IP address nor a valid host name", addr, host)
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add(path, "%q: port %q is out of range (1 to 65535)", addr, port)
		}
	}
}

func checkFamilySource(path string, fam Family, src string, add adder) {
	switch fam {
	case FamilyAuto, FamilyIP4, FamilyIP6, FamilyBoth:
	default:
		add(path+".family", "%q is not one of auto, ip4, ip6, both", fam)
	}
	if src != "" && net.ParseIP(src) == nil && !validInterfaceName(src) {
		add(path+".source", "%q is neither an IP address nor an interface name", src)
	}
}

// checkLiteralFamily refuses a family a literal address cannot have.
func checkLiteralFamily(path, host string, fam Family, add adder) {
	if ip := net.ParseIP(host); ip != nil {
		is4 := ip.To4() != nil
		if (fam == FamilyIP6 && is4) || (fam == FamilyIP4 && !is4) || fam == FamilyBoth {
			add(path+".family", "%q cannot be used with the literal address %s", fam, host)
		}
	}
}

// oneFamily is the family of a probe that runs over one family only: the
// global family, with "both" meaning auto.
func oneFamily(f *Family, g *Global) {
	if *f == "" {
		*f = g.Family
		if *f == FamilyBoth {
			*f = FamilyAuto
		}
	}
}

func validHost(h string) bool {
	if h == GatewayKeyword || net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

func validInterfaceName(s string) bool {
	if len(s) == 0 || len(s) > 15 {
		return false
	}
	return !strings.ContainsAny(s, "/ \t\n:")
}
