package collector

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Helpers shared by the host collectors.

func hostDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, subsystem, name), help, labels, nil)
}

// skipSeries logs, at debug level, why a series is left out of this scrape.
func skipSeries(logger *slog.Logger, what string, err error) {
	logger.Debug("skipping series", "what", what, "err", err)
}

// readSysfs reads a sysfs class under dir with read, guarded as readGuarded
// is, and checks every attribute under globs as checkAttrs does. On an error
// it logs why these series are left out and reports false: a class this
// machine lacks (no battery, no cpufreq in a VM) is no scrape error.
func readSysfs[T any](logger *slog.Logger, what, dir string, read func() (T, error), emptyOK bool, globs ...string) (T, bool) {
	v, err := readGuarded(sysFilePath(dir), read)
	if err == nil {
		err = checkAttrs(emptyOK, globs...)
	}
	if err != nil {
		skipSeries(logger, what, err)
		var zero T
		return zero, false
	}
	return v, true
}

// parseSysfsInt parses one integer attribute as sysfs prints it: decimal,
// optionally signed, with a trailing newline.
func parseSysfsInt(b []byte) (int64, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 0 {
		return 0, errors.New("empty attribute")
	}
	return strconv.ParseInt(string(s), 10, 64)
}

func readSysfsInt(path string) (int64, error) {
	b, err := readAttr(path)
	if err != nil {
		return 0, err
	}
	v, err := parseSysfsInt(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func readSysfsString(path string) (string, error) {
	b, err := readAttr(path)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// uniqueLabel returns name, or name plus alt when name is already taken, so
// two chips or rails that share a name do not produce duplicate series.
func uniqueLabel(seen map[string]bool, name, alt string) (string, bool) {
	if !seen[name] {
		seen[name] = true
		return name, true
	}
	name = name + "-" + alt
	if seen[name] {
		return "", false
	}
	seen[name] = true
	return name, true
}
