// Package upstream finds the current upstream releases the tests run against
// — Prometheus and promtool, Alertmanager and amtool, VictoriaMetrics and
// vmalert at the versions tools/upstream/go.mod pins — as .ci/upstream builds
// them, and falls back to Debian's packages (the oldest versions smokemon
// supports) when they are not built, saying so.
package upstream

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// products maps each binary to the module that builds it.
var products = map[string]string{
	"prometheus":       "github.com/prometheus/prometheus",
	"promtool":         "github.com/prometheus/prometheus",
	"alertmanager":     "github.com/prometheus/alertmanager",
	"amtool":           "github.com/prometheus/alertmanager",
	"victoria-metrics": "github.com/VictoriaMetrics/VictoriaMetrics",
	"vmalert":          "github.com/VictoriaMetrics/VictoriaMetrics",
}

// Root is the repository root, found from this file's own path: the tests
// run from a checkout.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Versions reads the pinned module versions from tools/upstream/go.mod.
func Versions() (map[string]string, error) {
	p := filepath.Join(Root(), "tools/upstream/go.mod")
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && strings.Contains(fields[0], "/") && strings.HasPrefix(fields[1], "v") {
			out[fields[0]] = fields[1]
		}
	}
	return out, sc.Err()
}

// Release is the release name of binary's pinned version, as its project
// and its container image tags spell it: "3.16.0" for Prometheus module
// v0.316.0, "0.35.0" for Alertmanager, "v1.151.0" for VictoriaMetrics.
func Release(binary string) (string, error) {
	mod, ok := products[binary]
	if !ok {
		return "", fmt.Errorf("upstream: unknown binary %q", binary)
	}
	vs, err := Versions()
	if err != nil {
		return "", err
	}
	v, ok := vs[mod]
	if !ok {
		return "", fmt.Errorf("upstream: tools/upstream/go.mod does not pin %s", mod)
	}
	switch mod {
	case "github.com/prometheus/prometheus":
		// Prometheus 3.MM.P is module version v0.3MM.P.
		parts := strings.Split(strings.TrimPrefix(v, "v0."), ".")
		n, err := strconv.Atoi(parts[0])
		if len(parts) != 2 || err != nil || n < 300 {
			return "", fmt.Errorf("upstream: %s %s is not a Prometheus 3 module version", mod, v)
		}
		return fmt.Sprintf("3.%d.%s", n-300, parts[1]), nil
	case "github.com/prometheus/alertmanager":
		return strings.TrimPrefix(v, "v"), nil
	}
	return v, nil
}

// envName is the variable .ci/upstream prints for binary.
func envName(binary string) string {
	return "SMOKEMON_" + strings.ToUpper(strings.ReplaceAll(binary, "-", "_"))
}

// Path returns the upstream build of binary: $SMOKEMON_<BINARY> when set
// (.ci/test sets them), else where .ci/upstream caches it.
func Path(binary string) (string, error) {
	if p := os.Getenv(envName(binary)); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("upstream: $%s: %v", envName(binary), err)
		}
		return p, nil
	}
	rel, err := Release(binary)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	product := map[string]string{
		"github.com/prometheus/prometheus":           "prometheus",
		"github.com/prometheus/alertmanager":         "alertmanager",
		"github.com/VictoriaMetrics/VictoriaMetrics": "victoriametrics",
	}[products[binary]]
	p := filepath.Join(cache, "smokemon", "tools", product+"-"+rel, binary)
	if _, err := exec.LookPath(p); err != nil {
		return "", fmt.Errorf("upstream: %s %s is not built (run .ci/upstream): %v", binary, rel, err)
	}
	return p, nil
}

// Binary is one server build a test runs on.
type Binary struct {
	Name    string // "prometheus 3.16.0" or "prometheus (Debian)"
	Path    string
	Current bool // the pinned upstream release, not Debian's
}

// Current returns the upstream build of binary, or else Debian's (the
// command debian on $PATH) with a log line saying the test ran on the old
// version only. It skips the test when neither exists.
func Current(t testing.TB, binary, debian string) Binary {
	t.Helper()
	p, err := Path(binary)
	if err == nil {
		rel, _ := Release(binary)
		return Binary{Name: binary + " " + rel, Path: p, Current: true}
	}
	t.Logf("UPSTREAM MISSING: %v; testing Debian's %s instead", err, debian)
	p, err = exec.LookPath(debian)
	if err != nil {
		t.Skipf("neither the upstream %s nor Debian's %s is installed (.ci/upstream, .ci/test-packages)", binary, debian)
	}
	return Binary{Name: binary + " (Debian)", Path: p}
}

// All returns Debian's binary (debian on $PATH) and the upstream build, each
// that exists, oldest first: tests that are cheap run on both. A missing
// upstream build is logged; the test skips when neither exists.
func All(t testing.TB, binary, debian string) []Binary {
	t.Helper()
	var out []Binary
	if p, err := exec.LookPath(debian); err == nil {
		out = append(out, Binary{Name: binary + " (Debian)", Path: p})
	}
	if p, err := Path(binary); err == nil {
		rel, _ := Release(binary)
		out = append(out, Binary{Name: binary + " " + rel, Path: p, Current: true})
	} else {
		t.Logf("UPSTREAM MISSING: %v; testing Debian's %s only", err, debian)
	}
	if len(out) == 0 {
		t.Skipf("neither the upstream %s nor Debian's %s is installed (.ci/upstream, .ci/test-packages)", binary, debian)
	}
	return out
}
