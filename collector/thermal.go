package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
)

// The thermal collector reports every thermal zone (not only the hottest),
// its trip points and cooling devices, and every hwmon sensor: on a fanless
// board the temperature curve explains many a slow network hour.

func init() {
	registerCollector("thermal", true, newThermalCollector)
}

type thermalCollector struct {
	logger *slog.Logger

	zoneTemp, tripTemp, coolCur, coolMax *prometheus.Desc
	hwmonTemp, hwmonTempMax, hwmonTempCrit,
	hwmonVolts, hwmonAmps, hwmonWatts, hwmonFan *prometheus.Desc
}

func newThermalCollector(logger *slog.Logger) (Collector, error) {
	if _, err := sysFS(); err != nil {
		return nil, err
	}
	return &thermalCollector{
		logger:        logger,
		zoneTemp:      hostDesc("thermal", "zone_temperature_celsius", "Temperature of a thermal zone.", "zone", "type"),
		tripTemp:      hostDesc("thermal", "zone_trip_point_celsius", "Temperature at which a thermal zone's trip point fires (trip_type passive, active, hot or critical).", "zone", "type", "trip", "trip_type"),
		coolCur:       hostDesc("thermal", "cooling_device_state", "Current state of a cooling device (0 = no cooling; for a cpufreq device, how many frequency steps it takes away).", "device", "type"),
		coolMax:       hostDesc("thermal", "cooling_device_max_state", "Highest state a cooling device can reach.", "device", "type"),
		hwmonTemp:     hostDesc("hwmon", "temperature_celsius", "Temperature read by a hwmon sensor.", "chip", "sensor"),
		hwmonTempMax:  hostDesc("hwmon", "temperature_max_celsius", "High-temperature limit of a hwmon sensor.", "chip", "sensor"),
		hwmonTempCrit: hostDesc("hwmon", "temperature_critical_celsius", "Critical-temperature limit of a hwmon sensor.", "chip", "sensor"),
		hwmonVolts:    hostDesc("hwmon", "voltage_volts", "Voltage read by a hwmon sensor.", "chip", "sensor"),
		hwmonAmps:     hostDesc("hwmon", "current_amperes", "Current read by a hwmon sensor.", "chip", "sensor"),
		hwmonWatts:    hostDesc("hwmon", "power_watts", "Power read by a hwmon sensor.", "chip", "sensor"),
		hwmonFan:      hostDesc("hwmon", "fan_speed_rpm", "Fan speed read by a hwmon sensor, in revolutions per minute (the unit every fan datasheet and tool uses).", "chip", "sensor"),
	}, nil
}

func (c *thermalCollector) Update(ch chan<- prometheus.Metric) error {
	sys, err := sysFS()
	if err != nil {
		return err
	}
	n := c.updateZones(ch, sys)
	n += c.updateCooling(ch, sys)
	n += c.updateHwmon(ch)
	if n == 0 {
		return ErrNoData
	}
	return nil
}

func (c *thermalCollector) updateZones(ch chan<- prometheus.Metric, sys sysfs.FS) int {
	zones, ok := readSysfs(c.logger, "thermal zones", "class/thermal", sys.ClassThermalZoneStats, true, "class/thermal/thermal_zone*/*")
	if !ok {
		return 0
	}
	n := 0
	for _, z := range zones {
		if z.Type == "" { // every zone has a type; an empty one is a bad read
			skipSeries(c.logger, "thermal zone "+z.Name, fmt.Errorf("%s: empty", sysFilePath("class/thermal", "thermal_zone"+z.Name, "type")))
			continue
		}
		if z.ReadErrors == nil {
			ch <- prometheus.MustNewConstMetric(c.zoneTemp, prometheus.GaugeValue, float64(z.Temp)/1000, z.Name, z.Type)
			n++
		} else {
			skipSeries(c.logger, "thermal zone "+z.Name, z.ReadErrors)
		}
		dir := sysFilePath("class/thermal", "thermal_zone"+z.Name)
		for i := 0; ; i++ {
			prefix := filepath.Join(dir, "trip_point_"+strconv.Itoa(i))
			kind, err := readSysfsString(prefix + "_type")
			if err != nil {
				break // trip points are numbered without gaps
			}
			t, err := readSysfsInt(prefix + "_temp")
			if err != nil {
				skipSeries(c.logger, prefix+"_temp", err)
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.tripTemp, prometheus.GaugeValue, float64(t)/1000, z.Name, z.Type, strconv.Itoa(i), kind)
			n++
		}
	}
	return n
}

func (c *thermalCollector) updateCooling(ch chan<- prometheus.Metric, sys sysfs.FS) int {
	devs, ok := readSysfs(c.logger, "cooling devices", "class/thermal", sys.ClassCoolingDeviceStats, true, "class/thermal/cooling_device*/*")
	if !ok {
		return 0
	}
	n := 0
	for _, d := range devs {
		if d.Type == "" { // every cooling device has a type; an empty one is a bad read
			skipSeries(c.logger, "cooling device "+d.Name, fmt.Errorf("%s: empty", sysFilePath("class/thermal", "cooling_device"+d.Name, "type")))
			continue
		}
		n++
		ch <- prometheus.MustNewConstMetric(c.coolCur, prometheus.GaugeValue, float64(d.CurState), d.Name, d.Type)
		ch <- prometheus.MustNewConstMetric(c.coolMax, prometheus.GaugeValue, float64(d.MaxState), d.Name, d.Type)
	}
	return n
}

func (c *thermalCollector) updateHwmon(ch chan<- prometheus.Metric) int {
	dirs, err := hwmonDirs()
	if err != nil {
		skipSeries(c.logger, "hwmon", err)
		return 0
	}
	// Two chips of one name are told apart by the order they come in
	// (uniqueLabel), so a chip whose name cannot be read would hand its
	// label to the next one: its readings under another chip's name.
	// Without every name, no hwmon series.
	chips := make([]hwmonChip, 0, len(dirs))
	for _, d := range dirs {
		chip, err := readHwmonChip(d)
		if err != nil {
			skipSeries(c.logger, "hwmon (every chip, since labels depend on all names)", err)
			return 0
		}
		chips = append(chips, chip)
	}
	seen := map[string]bool{}
	n := 0
	for _, chip := range chips {
		name, ok := uniqueLabel(seen, chip.name, chip.alt)
		if !ok {
			continue
		}
		for _, s := range chip.sensors {
			for _, v := range s.values {
				desc, div := c.hwmonDesc(s.kind, v.item)
				if desc == nil {
					continue
				}
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v.value)/div, name, s.label)
				n++
			}
		}
	}
	return n
}

// hwmonDesc maps a sysfs attribute to a metric and the divisor from the
// kernel's unit (millidegrees, millivolts, milliamperes, microwatts) to base
// units; dividing keeps 83850 m°C at 83.85, where multiplying by 1e-3 would not.
func (c *thermalCollector) hwmonDesc(kind, item string) (*prometheus.Desc, float64) {
	switch kind + "_" + item {
	case "temp_input":
		return c.hwmonTemp, 1e3
	case "temp_max":
		return c.hwmonTempMax, 1e3
	case "temp_crit":
		return c.hwmonTempCrit, 1e3
	case "in_input":
		return c.hwmonVolts, 1e3
	case "curr_input":
		return c.hwmonAmps, 1e3
	case "power_input", "power_average":
		return c.hwmonWatts, 1e6
	case "fan_input":
		return c.hwmonFan, 1
	}
	return nil, 0
}

// hwmonDirs lists the hwmon devices; /sys/class/hwmon is small, one entry per chip.
func hwmonDirs() ([]string, error) {
	entries, err := os.ReadDir(sysFilePath("class/hwmon"))
	if err != nil {
		return nil, err
	}
	dirs := make([]string, 0, len(entries))
	for _, e := range entries {
		dirs = append(dirs, sysFilePath("class/hwmon", e.Name()))
	}
	return dirs, nil
}

type hwmonChip struct {
	name    string
	alt     string // tells apart chips sharing a name: the device they sit on
	sensors []hwmonSensor
}

type hwmonSensor struct {
	kind   string // temp, in, curr, power, fan
	index  int
	label  string // the driver's label, else kind and index ("temp1")
	values []hwmonValue
}

type hwmonValue struct {
	item  string // input, max, crit, average, lcrit_alarm …
	value int64
}

// readHwmonChip reads the attributes of one hwmon device. Old drivers keep
// their attributes in the device directory instead of the hwmon one.
func readHwmonChip(dir string) (hwmonChip, error) {
	name, err := readSysfsString(filepath.Join(dir, "name"))
	if err != nil {
		dir = filepath.Join(dir, "device")
		if name, err = readSysfsString(filepath.Join(dir, "name")); err != nil {
			return hwmonChip{}, err
		}
	}
	chip := hwmonChip{name: name, alt: filepath.Base(dir)}
	if target, err := os.Readlink(filepath.Join(dir, "device")); err == nil {
		chip.alt = filepath.Base(target)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return hwmonChip{}, err
	}
	files := make([]string, 0, len(entries))
	for _, e := range entries {
		files = append(files, e.Name())
	}
	chip.sensors = hwmonSensors(files, func(f string) ([]byte, error) {
		return readAttr(filepath.Join(dir, f))
	})
	return chip, nil
}

// hwmonSensors groups a chip's attribute files into sensors and reads their
// values. A value that fails to read or parse is left out; labels that the
// driver repeats within one kind fall back to the attribute name.
func hwmonSensors(files []string, read func(string) ([]byte, error)) []hwmonSensor {
	type key struct {
		kind  string
		index int
	}
	byKey := map[key]*hwmonSensor{}
	var order []key
	for _, f := range files {
		kind, index, item, ok := parseHwmonAttrName(f)
		if !ok || !hwmonItems[item] {
			continue
		}
		b, err := read(f)
		if err != nil {
			continue
		}
		v, err := parseSysfsInt(b)
		if err != nil {
			continue
		}
		k := key{kind, index}
		s := byKey[k]
		if s == nil {
			s = &hwmonSensor{kind: kind, index: index}
			byKey[k] = s
			order = append(order, k)
		}
		s.values = append(s.values, hwmonValue{item: item, value: v})
	}
	out := make([]hwmonSensor, 0, len(order))
	used := map[string]bool{}
	for _, k := range order {
		s := byKey[k]
		attr := k.kind + strconv.Itoa(k.index)
		s.label = attr
		if b, err := read(attr + "_label"); err == nil {
			if l := strings.TrimSpace(string(b)); l != "" && !used[k.kind+"/"+l] {
				s.label = l
			}
		}
		used[k.kind+"/"+s.label] = true
		out = append(out, *s)
	}
	return out
}

var errNotHwmonAttr = errors.New("not a hwmon sensor attribute")

// hwmonItems are the attributes worth a read; a chip has many more (min,
// hyst, offset, every alarm) and each read can cost a bus transaction.
var hwmonItems = map[string]bool{"input": true, "max": true, "crit": true, "average": true, "lcrit_alarm": true}

// parseHwmonAttrName splits a hwmon attribute file name such as
// "temp1_input" or "in0_lcrit_alarm" into kind, channel index and item.
func parseHwmonAttrName(name string) (kind string, index int, item string, ok bool) {
	i := strings.IndexByte(name, '_')
	if i <= 0 || i == len(name)-1 {
		return "", 0, "", false
	}
	head, item := name[:i], name[i+1:]
	j := strings.IndexAny(head, "0123456789")
	if j <= 0 {
		return "", 0, "", false
	}
	switch head[:j] {
	case "temp", "in", "curr", "power", "fan", "energy", "humidity":
	default:
		return "", 0, "", false
	}
	index, err := strconv.Atoi(head[j:])
	if err != nil || index < 0 {
		return "", 0, "", false
	}
	return head[:j], index, item, true
}

// valueOf returns one item of a sensor, e.g. "input".
func (s hwmonSensor) valueOf(item string) (int64, error) {
	for _, v := range s.values {
		if v.item == item {
			return v.value, nil
		}
	}
	return 0, fmt.Errorf("%s%d_%s: %w", s.kind, s.index, item, errNotHwmonAttr)
}
