package collector

import (
	"bytes"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smokemon/smokemon/internal/config"
)

// The nodeinfo collector reports one series naming the node and what it is,
// so dashboards and the analyzer can tell a Pi 4 from an Orin without a lookup table.

func init() {
	registerConfigured("nodeinfo", true, newNodeInfoCollector)
}

type nodeInfoCollector struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	labels []string // node, model, kernel, os, arch
}

func newNodeInfoCollector(logger *slog.Logger, cfg *config.Config) (Collector, error) {
	// Model, kernel and OS cannot change under a running process (an OS
	// upgrade comes with a reboot), so they are read once.
	c := &nodeInfoCollector{
		desc:   hostDesc("node", "info", "The node's name (global.node_name, else the host name), board model, kernel release, OS and CPU architecture; always 1.", "node", "model", "kernel", "os", "arch"),
		labels: []string{"", boardModel(logger), readTrimmed(procFilePath("sys/kernel/osrelease")), osName(), machineArch()},
	}
	return c, Apply(c, cfg)
}

// Prepare picks up a changed global.node_name (else the host name).
func (c *nodeInfoCollector) Prepare(cfg *config.Config) (func(), error) {
	name := cfg.Global.NodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		name = h
	}
	return func() {
		c.mu.Lock()
		c.labels[0] = name
		c.mu.Unlock()
	}, nil
}

func (c *nodeInfoCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, c.labels...)
	return nil
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// boardModel is the device-tree model on ARM boards ("Raspberry Pi 5 Model B
// Rev 1.0"), else DMI vendor and product on PCs.
func boardModel(logger *slog.Logger) string {
	if b, err := os.ReadFile(procFilePath("device-tree/model")); err == nil {
		return parseDeviceTreeString(b)
	}
	vendor := readTrimmed(sysFilePath("class/dmi/id/sys_vendor"))
	product := readTrimmed(sysFilePath("class/dmi/id/product_name"))
	// Lenovo puts a part number in product_name and the model in product_version.
	if v := readTrimmed(sysFilePath("class/dmi/id/product_version")); vendor == "LENOVO" && v != "" {
		product = v
	}
	model := strings.TrimSpace(vendor + " " + product)
	if model == "" {
		logger.Debug("no board model in the device tree or DMI")
	}
	return model
}

// parseDeviceTreeString returns the first string of a device-tree property:
// NUL-terminated, possibly a list of several.
func parseDeviceTreeString(b []byte) string {
	s, _, _ := bytes.Cut(b, []byte{0})
	return strings.ToValidUTF8(string(bytes.TrimSpace(s)), "?")
}

func osName() string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, err := os.ReadFile(rootfsFilePath(p)); err == nil {
			return parseOSRelease(b)
		}
	}
	return ""
}

// parseOSRelease returns PRETTY_NAME from an os-release file, else NAME
// and VERSION_ID, unquoting as os-release(5) allows.
func parseOSRelease(b []byte) string {
	vals := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if u, err := strconv.Unquote(`"` + v[1:len(v)-1] + `"`); err == nil {
				v = u
			} else {
				v = v[1 : len(v)-1]
			}
		}
		vals[k] = strings.ToValidUTF8(v, "?")
	}
	if p := vals["PRETTY_NAME"]; p != "" {
		return p
	}
	return strings.TrimSpace(vals["NAME"] + " " + vals["VERSION_ID"])
}

// machineArch is the kernel's machine name (aarch64, armv7l, x86_64, as
// uname -m says), else the exporter's build architecture.
func machineArch() string {
	if a := readTrimmed(procFilePath("sys/kernel/arch")); a != "" {
		return a
	}
	return runtime.GOARCH
}
