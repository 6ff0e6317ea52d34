package upstream

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRelease(t *testing.T) {
	want := map[string]string{"prometheus": "3.", "promtool": "3.", "alertmanager": "0.", "amtool": "0.", "victoria-metrics": "v1.", "vmalert": "v1."}
	for bin, prefix := range want {
		rel, err := Release(bin)
		if err != nil || !strings.HasPrefix(rel, prefix) || strings.Count(rel, ".") != 2 {
			t.Errorf("Release(%s) = %q, %v; want %s*.*", bin, rel, err, prefix)
		}
	}
	if _, err := Release("grafana"); err == nil {
		t.Error("Release(grafana): no error")
	}
}

// The binaries .ci/upstream built are the releases go.mod pins.
func TestBuiltVersions(t *testing.T) {
	for _, bin := range []string{"prometheus", "promtool", "alertmanager", "amtool", "victoria-metrics", "vmalert"} {
		p, err := Path(bin)
		if err != nil {
			t.Logf("UPSTREAM MISSING: %v", err)
			continue
		}
		flag := "--version"
		if strings.HasPrefix(bin, "v") {
			flag = "-version"
		}
		out, err := exec.Command(p, flag).CombinedOutput()
		rel, _ := Release(bin)
		if err != nil || !strings.Contains(string(out), rel) {
			t.Errorf("%s %s: %v: %.300s; want %s", p, flag, err, out, rel)
		}
	}
}

func TestPathEnv(t *testing.T) {
	t.Setenv("SMOKEMON_VMALERT", filepath.Join(t.TempDir(), "nothing"))
	if _, err := Path("vmalert"); err == nil {
		t.Error("a $SMOKEMON_VMALERT that does not exist was accepted")
	}
	exe, _ := os.Executable()
	t.Setenv("SMOKEMON_VMALERT", exe)
	if p, err := Path("vmalert"); err != nil || p != exe {
		t.Errorf("Path(vmalert) = %q, %v; want $SMOKEMON_VMALERT %s", p, err, exe)
	}
}
