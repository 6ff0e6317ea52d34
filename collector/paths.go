package collector

import (
	"path/filepath"

	"github.com/alecthomas/kingpin/v2"
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
