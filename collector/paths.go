package collector

import (
	"path/filepath"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
	"github.com/prometheus/procfs/sysfs"
)

// The mount points every file-reading collector goes through, so a fixture
// tree under testdata/ can stand in for a Raspberry Pi or a Jetson.
var (
	procPath   = kingpin.Flag("path.procfs", "procfs mountpoint.").Default("/proc").String()
	sysPath    = kingpin.Flag("path.sysfs", "sysfs mountpoint.").Default("/sys").String()
	rootfsPath = kingpin.Flag("path.rootfs", "rootfs mountpoint (for filesystem metrics and /etc files).").Default("/").String()
	devPath    = kingpin.Flag("path.devfs", "devfs mountpoint.").Default("/dev").String()
)

func procFilePath(name ...string) string {
	return filepath.Join(append([]string{*procPath}, name...)...)
}
func sysFilePath(name ...string) string { return filepath.Join(append([]string{*sysPath}, name...)...) }
func devFilePath(name ...string) string { return filepath.Join(append([]string{*devPath}, name...)...) }

func rootfsFilePath(name ...string) string {
	return filepath.Join(append([]string{*rootfsPath}, name...)...)
}

// Collectors open procfs and sysfs on each scrape (a stat and a statfs)
// rather than keep an FS in their structs. A collector is held as an
// interface, and kingpin's text/template calls methods by name, so the
// linker keeps every exported method of every type a collector's struct
// names: FS fields linked in every parser of the three libraries, used or
// not, 0.66 MB of binary that start-up maps resident.
func procFS() (procfs.FS, error)       { return procfs.NewFS(*procPath) }
func sysFS() (sysfs.FS, error)         { return sysfs.NewFS(*sysPath) }
func blockFS() (blockdevice.FS, error) { return blockdevice.NewFS(*procPath, *sysPath) }

// ProcPath is --path.procfs, for the probes that read the routing table.
func ProcPath() string { return *procPath }

// RootfsPath is --path.rootfs, for the probes that read /etc/resolv.conf and /etc/hosts.
func RootfsPath() string { return *rootfsPath }
