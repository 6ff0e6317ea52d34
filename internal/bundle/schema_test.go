package bundle

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDashboardsSchema checks every dashboard against Grafana's published
// dashboard schema: tools/grafana-schema decodes them strictly with the
// grafana-foundation-sdk, a module of its own (the project's go.mod does not
// carry the SDK). Skipped only when that module cannot be downloaded.
func TestDashboardsSchema(t *testing.T) {
	need(t, "go")
	tool := filepath.Join(root, "tools/grafana-schema")
	dl := exec.Command("go", "mod", "download")
	dl.Dir = tool
	if out, err := dl.CombinedOutput(); err != nil {
		t.Skipf("tools/grafana-schema: its modules cannot be downloaded (no module proxy?): %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(root, "grafana/dashboards/*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	cmd := exec.Command("go", append([]string{"run", "."}, files...)...)
	cmd.Dir = tool
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dashboards do not match Grafana's schema: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), ": ok\n"); n != len(files) {
		t.Fatalf("%d of %d dashboards checked:\n%s", n, len(files), out)
	}
	t.Logf("%d dashboards match the schema (grafana-foundation-sdk strict decoding)", len(files))
}
