package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// The disk collector reports space on real filesystems, bytes written per
// block device, and eMMC wear: a full or worn-out SD card or eMMC is a
// classic cause of an edge node going quiet.

func init() {
	registerCollector("disk", true, newDiskCollector)
}

// pseudoFilesystems hold no user data, or (squashfs, erofs, iso9660) are
// always full by design.
var pseudoFilesystems = map[string]bool{
	"autofs": true, "binfmt_misc": true, "bpf": true, "cgroup": true, "cgroup2": true, "configfs": true,
	"debugfs": true, "devpts": true, "devtmpfs": true, "efivarfs": true, "fusectl": true, "hugetlbfs": true,
	"mqueue": true, "nsfs": true, "overlay": true, "proc": true, "pstore": true, "ramfs": true,
	"rpc_pipefs": true, "securityfs": true, "selinuxfs": true, "sysfs": true, "tmpfs": true, "tracefs": true,
	"squashfs": true, "erofs": true, "iso9660": true, "fuse.portal": true, "fuse.gvfsd-fuse": true,
}

// networkFilesystems are skipped because statfs on a hung server blocks the scrape.
var networkFilesystems = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "9p": true, "fuse.sshfs": true, "ceph": true, "glusterfs": true,
}

type diskCollector struct {
	logger *slog.Logger
	statfs func(path string, st *unix.Statfs_t) error // tests stub it: fixture mount points are not mounted

	size, free, avail, readonly, written, read, lifeTime, preEOL *prometheus.Desc
}

func newDiskCollector(logger *slog.Logger) (Collector, error) {
	if _, err := blockFS(); err != nil {
		return nil, err
	}
	fsLabels := []string{"mountpoint", "device", "fstype"}
	return &diskCollector{
		logger:   logger,
		statfs:   unix.Statfs,
		size:     hostDesc("disk", "filesystem_size_bytes", "Size of a mounted filesystem.", fsLabels...),
		free:     hostDesc("disk", "filesystem_free_bytes", "Free space on a mounted filesystem, the root-reserved part included.", fsLabels...),
		avail:    hostDesc("disk", "filesystem_available_bytes", "Free space on a mounted filesystem that unprivileged users can use.", fsLabels...),
		readonly: hostDesc("disk", "filesystem_readonly", "1 if the filesystem is mounted read-only (a remount after IO errors shows up here).", fsLabels...),
		written:  hostDesc("disk", "written_bytes_total", "Bytes written to a block device.", "device"),
		read:     hostDesc("disk", "read_bytes_total", "Bytes read from a block device.", "device"),
		lifeTime: hostDesc("emmc", "life_time_used_ratio", "eMMC estimated life time used, lower bound of the device's 10% band (0 = 0-10%, 0.9 = 90-100%, 1 = exceeded); type A and B are the card's two memory kinds (typically SLC and MLC).", "device", "type"),
		preEOL:   hostDesc("emmc", "pre_eol_level", "eMMC reserved-block consumption: 1 normal, 2 warning (80% of reserve used), 3 urgent (90%).", "device"),
	}, nil
}

func (c *diskCollector) Update(ch chan<- prometheus.Metric) error {
	n := c.updateFilesystems(ch)
	n += c.updateBlockDevices(ch)
	if n == 0 {
		return ErrNoData
	}
	return nil
}

func (c *diskCollector) updateFilesystems(ch chan<- prometheus.Metric) int {
	// PID 1's view is the host's when the exporter runs in a container with
	// the host's /proc and / mounted in (--path.procfs, --path.rootfs).
	proc, err := procFS()
	if err != nil {
		skipSeries(c.logger, "mountinfo", err)
		return 0
	}
	mounts, err := readGuarded(procFilePath("1/mountinfo"), func() ([]*procfs.MountInfo, error) { return proc.GetProcMounts(1) })
	if err != nil {
		if mounts, err = readGuarded(procFilePath("self/mountinfo"), proc.GetMounts); err != nil {
			skipSeries(c.logger, "mountinfo", err)
			return 0
		}
	}
	seen := map[string]bool{}
	n := 0
	for _, m := range mounts {
		if pseudoFilesystems[m.FSType] || networkFilesystems[m.FSType] || seen[m.MajorMinorVer] {
			continue
		}
		// A bind mount or a second mount of the same filesystem reports the
		// same numbers: the first mount of each device stands for it.
		seen[m.MajorMinorVer] = true
		var st unix.Statfs_t
		if err := c.statfs(rootfsFilePath(m.MountPoint), &st); err != nil {
			skipSeries(c.logger, "statfs "+m.MountPoint, err)
			continue
		}
		labels := []string{m.MountPoint, m.Source, m.FSType}
		bs := float64(st.Bsize)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.Blocks)*bs, labels...)
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(st.Bfree)*bs, labels...)
		ch <- prometheus.MustNewConstMetric(c.avail, prometheus.GaugeValue, float64(st.Bavail)*bs, labels...)
		ro := 0.0
		if _, ok := m.Options["ro"]; ok {
			ro = 1
		}
		ch <- prometheus.MustNewConstMetric(c.readonly, prometheus.GaugeValue, ro, labels...)
		n++
	}
	return n
}

// virtualBlockDevice tells apart devices whose writes touch no flash or disk,
// and the eMMC boot and RPMB hardware partitions that mirror their card.
func virtualBlockDevice(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "sr", "fd", "nbd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return strings.HasPrefix(name, "mmcblk") && (strings.Contains(name, "boot") || strings.Contains(name, "rpmb"))
}

func (c *diskCollector) updateBlockDevices(ch chan<- prometheus.Metric) int {
	block, err := blockFS()
	if err != nil {
		skipSeries(c.logger, "block devices", err)
		return 0
	}
	devs, err := block.SysBlockDevices()
	if err == nil {
		err = checkAttrs(false, "block/*/stat")
	}
	if err != nil {
		skipSeries(c.logger, "block devices", err)
		return 0
	}
	n := 0
	for _, d := range devs {
		if virtualBlockDevice(d) {
			continue
		}
		st, _, err := block.SysBlockDeviceStat(d)
		if err != nil {
			skipSeries(c.logger, "block/"+d+"/stat", err)
		} else {
			// The stat file counts 512-byte sectors whatever the device's sector size.
			ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(st.WriteSectors)*512, d)
			ch <- prometheus.MustNewConstMetric(c.read, prometheus.CounterValue, float64(st.ReadSectors)*512, d)
			n++
		}
		if strings.HasPrefix(d, "mmcblk") {
			n += c.updateEMMC(ch, d)
		}
	}
	return n
}

// updateEMMC reads the wear indicators eMMC 5.0+ exposes; SD cards have none.
func (c *diskCollector) updateEMMC(ch chan<- prometheus.Metric, dev string) int {
	dir := sysFilePath("block", dev, "device")
	n := 0
	if b, err := readFileNoBlock(filepath.Join(dir, "life_time")); err != nil {
		skipSeries(c.logger, dev+" life_time", err)
	} else if a, bb, err := parseEMMCLifeTime(b); err != nil {
		skipSeries(c.logger, dev+" life_time", err)
	} else {
		for _, t := range []struct {
			typ string
			v   int
		}{{"A", a}, {"B", bb}} {
			if t.v == 0 {
				continue // "not defined": the card does not estimate this type
			}
			ch <- prometheus.MustNewConstMetric(c.lifeTime, prometheus.GaugeValue, float64(t.v-1)/10, dev, t.typ)
			n++
		}
	}
	if b, err := readFileNoBlock(filepath.Join(dir, "pre_eol_info")); err != nil {
		skipSeries(c.logger, dev+" pre_eol_info", err)
	} else if v, err := parseEMMCPreEOL(b); err != nil {
		skipSeries(c.logger, dev+" pre_eol_info", err)
	} else if v != 0 {
		ch <- prometheus.MustNewConstMetric(c.preEOL, prometheus.GaugeValue, float64(v), dev)
		n++
	}
	return n
}

// parseEMMCHex parses one eMMC register byte as the mmc driver prints it,
// "0x0a", or without the prefix on some vendor kernels.
func parseEMMCHex(s string) (int, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(s, 16, 8)
	return int(v), err
}

// parseEMMCLifeTime parses life_time, "0xAA 0xBB": the estimated life time
// used for type A and type B memory, 1 = 0-10% … 10 = 90-100%, 11 = exceeded, 0 = not defined.
func parseEMMCLifeTime(b []byte) (a, bb int, err error) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("life_time %q: want two values", b)
	}
	if a, err = parseEMMCHex(f[0]); err != nil {
		return 0, 0, fmt.Errorf("life_time type A: %w", err)
	}
	if bb, err = parseEMMCHex(f[1]); err != nil {
		return 0, 0, fmt.Errorf("life_time type B: %w", err)
	}
	if a > 11 || bb > 11 {
		return 0, 0, errors.New("life_time: reserved value")
	}
	return a, bb, nil
}

// parseEMMCPreEOL parses pre_eol_info, "0x01": 1 normal, 2 warning, 3 urgent, 0 not defined.
func parseEMMCPreEOL(b []byte) (int, error) {
	v, err := parseEMMCHex(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pre_eol_info: %w", err)
	}
	if v > 3 {
		return 0, fmt.Errorf("pre_eol_info: reserved value %d", v)
	}
	return v, nil
}
