package bundle

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/smokemon/smokemon/internal/upstream"
)

type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Volumes []any    `yaml:"volumes"`
	} `yaml:"services"`
}

func composeConfig(t *testing.T, file string) composeFile {
	t.Helper()
	cmd := exec.Command("docker-compose", "-f", file, "config")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GF_ADMIN_PASSWORD=test-only")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose -f %s config: %v\n%s", file, err, out)
	}
	var c composeFile
	if err := yaml.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// The images the compose files ship are the releases the suite tests
// (tools/upstream/go.mod, built by .ci/upstream), and both hubs take remote
// write from push-mode nodes.
func TestComposeVersions(t *testing.T) {
	need(t, "docker-compose")
	image := func(repo, binary, prefix string) string {
		rel, err := upstream.Release(binary)
		if err != nil {
			t.Fatal(err)
		}
		return repo + ":" + prefix + strings.TrimPrefix(rel, "v")
	}
	prom := composeConfig(t, "docker-compose.yml")
	vm := composeConfig(t, "docker-compose.victoriametrics.yml")
	for _, c := range []struct {
		file    composeFile
		name    string
		service string
		want    string
	}{
		{prom, "docker-compose.yml", "prometheus", image("prom/prometheus", "prometheus", "v")},
		{prom, "docker-compose.yml", "alertmanager", image("prom/alertmanager", "alertmanager", "v")},
		{vm, "docker-compose.victoriametrics.yml", "victoriametrics", image("victoriametrics/victoria-metrics", "victoria-metrics", "v")},
		{vm, "docker-compose.victoriametrics.yml", "vmalert", image("victoriametrics/vmalert", "vmalert", "v")},
		{vm, "docker-compose.victoriametrics.yml", "alertmanager", image("prom/alertmanager", "alertmanager", "v")},
	} {
		if got := c.file.Services[c.service].Image; got != c.want {
			t.Errorf("%s: service %s runs %q; the suite tests %q", c.name, c.service, got, c.want)
		}
	}
	if cmd := strings.Join(prom.Services["prometheus"].Command, " "); !strings.Contains(cmd, "--web.enable-remote-write-receiver") {
		t.Errorf("docker-compose.yml: Prometheus %q takes no remote write: the push hub needs --web.enable-remote-write-receiver", cmd)
	}
	// The VictoriaMetrics hub: VM scrapes with the shipped scrape configs and
	// listens where Grafana's datasource and the analyzer look (:9090);
	// vmalert runs every shipped rule file and writes back to VM.
	vmCmd := strings.Join(vm.Services["victoriametrics"].Command, " ")
	for _, want := range []string{"-httpListenAddr=:8428", "-httpListenAddr=:9090", "-promscrape.config=/etc/prometheus/prometheus.yml"} {
		if !strings.Contains(vmCmd, want) {
			t.Errorf("docker-compose.victoriametrics.yml: victoriametrics %q lacks %s", vmCmd, want)
		}
	}
	alertCmd := strings.Join(vm.Services["vmalert"].Command, " ")
	for _, want := range []string{"-rule=/etc/prometheus/rules/*.yml", "-remoteWrite.url=http://localhost:8428", "-notifier.url=http://localhost:9093"} {
		if !strings.Contains(alertCmd, want) {
			t.Errorf("docker-compose.victoriametrics.yml: vmalert %q lacks %s", alertCmd, want)
		}
	}
	for _, s := range []string{"exporter", "grafana", "analyzer"} {
		if vm.Services[s].Image != prom.Services[s].Image {
			t.Errorf("docker-compose.victoriametrics.yml: %s is %q, docker-compose.yml's %q", s, vm.Services[s].Image, prom.Services[s].Image)
		}
	}
}
