package collector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
	"golang.org/x/sys/unix"
)

// The power collector reports what a flaky supply looks like from inside the
// box: Jetson INA3221 rails, batteries and chargers, RAPL energy on x86, and
// the Raspberry Pi firmware's under-voltage and throttling flags.

func init() {
	registerCollector("power", true, newPowerCollector)
}

type powerCollector struct {
	logger *slog.Logger

	railWatts, railVolts, railAmps                                         *prometheus.Desc
	psOnline, psCapacity, psWatts, psVolts, psAmps, psEnergy, psEnergyFull *prometheus.Desc
	psStatus, psInfo                                                       *prometheus.Desc
	raplJoules                                                             *prometheus.Desc
	rpiCondition, rpiSource                                                *prometheus.Desc
}

func newPowerCollector(logger *slog.Logger) (Collector, error) {
	if _, err := sysFS(); err != nil {
		return nil, err
	}
	return &powerCollector{
		logger:       logger,
		railWatts:    hostDesc("power", "rail_watts", "Power drawn through a board power rail (Jetson INA3221 monitor).", "rail"),
		railVolts:    hostDesc("power", "rail_volts", "Bus voltage of a board power rail (Jetson INA3221 monitor).", "rail"),
		railAmps:     hostDesc("power", "rail_amperes", "Current through a board power rail (Jetson INA3221 monitor).", "rail"),
		psOnline:     hostDesc("power_supply", "online", "1 if the power supply (charger, USB, mains) is connected and supplying.", "supply"),
		psCapacity:   hostDesc("power_supply", "capacity_ratio", "Battery charge as a ratio of full (0-1).", "supply"),
		psWatts:      hostDesc("power_supply", "power_watts", "Power flowing through the supply or battery (power_now, else voltage times current).", "supply"),
		psVolts:      hostDesc("power_supply", "voltage_volts", "Present voltage of the supply or battery.", "supply"),
		psAmps:       hostDesc("power_supply", "current_amperes", "Present current of the supply or battery.", "supply"),
		psEnergy:     hostDesc("power_supply", "energy_joules", "Energy stored in the battery now.", "supply"),
		psEnergyFull: hostDesc("power_supply", "energy_full_joules", "Energy the battery holds when full (its present, worn capacity).", "supply"),
		psStatus:     hostDesc("power_supply", "status", "1 for the battery's present status, 0 for the others.", "supply", "status"),
		psInfo:       hostDesc("power_supply", "info", "Kind of power supply (Battery, Mains, USB …); always 1.", "supply", "supply_type"),
		raplJoules:   hostDesc("rapl", "energy_joules_total", "Energy used by a RAPL power zone (package, core, uncore, dram, psys); wraps at the zone's range.", "zone"),
		rpiCondition: hostDesc("rpi", "throttle_condition", "1 if the Raspberry Pi firmware reports the condition (under_voltage, frequency_capped, throttled, soft_temp_limit), now or at any time since boot.", "condition", "when"),
		rpiSource:    hostDesc("rpi", "throttle_source_info", "Where the Raspberry Pi throttle flags were read: get_throttled (old sysfs node, all flags), rpi_volt (hwmon alarm, under-voltage now only) or vcio (firmware mailbox, all flags).", "source"),
	}, nil
}

func (c *powerCollector) Update(ch chan<- prometheus.Metric) error {
	sys, err := sysFS()
	if err != nil {
		return err
	}
	n := c.updateINA3221(ch)
	n += c.updatePowerSupply(ch, sys)
	n += c.updateRAPL(ch, sys)
	n += c.updateRPi(ch)
	if n == 0 {
		return ErrNoData
	}
	return nil
}

// powerRail is one INA3221 channel in base units; the has flags say which
// readings the driver gave.
type powerRail struct {
	name               string
	volts, amps, watts float64
	hasV, hasA, hasW   bool
}

func (c *powerCollector) updateINA3221(ch chan<- prometheus.Metric) int {
	var rails []powerRail
	// Older L4T: the downstream IIO driver, channels 0-2, power given in mW.
	iio, _ := filepath.Glob(sysFilePath("bus/i2c/drivers/ina3221x/*/iio:device*"))
	for _, dir := range iio {
		rails = append(rails, ina3221IIORails(func(f string) ([]byte, error) {
			return readAttr(filepath.Join(dir, f))
		})...)
	}
	// Newer L4T: the mainline hwmon driver, channels 1-3, no power attribute.
	hw, _ := filepath.Glob(sysFilePath("bus/i2c/drivers/ina3221/*/hwmon/hwmon*"))
	for _, dir := range hw {
		chip, err := readHwmonChip(dir)
		if err != nil {
			skipSeries(c.logger, dir, err)
			continue
		}
		rails = append(rails, ina3221HwmonRails(chip.sensors)...)
	}
	seen := map[string]bool{}
	n := 0
	for i, r := range rails {
		name, ok := uniqueLabel(seen, r.name, strconv.Itoa(i))
		if !ok {
			continue
		}
		if r.hasW {
			ch <- prometheus.MustNewConstMetric(c.railWatts, prometheus.GaugeValue, r.watts, name)
			n++
		}
		if r.hasV {
			ch <- prometheus.MustNewConstMetric(c.railVolts, prometheus.GaugeValue, r.volts, name)
			n++
		}
		if r.hasA {
			ch <- prometheus.MustNewConstMetric(c.railAmps, prometheus.GaugeValue, r.amps, name)
			n++
		}
	}
	return n
}

// ina3221IIORails reads the IIO layout: rail_name_N, in_power N_input (mW),
// in_current N_input (mA), in_voltage N_input (mV) for N = 0..2.
func ina3221IIORails(read func(string) ([]byte, error)) []powerRail {
	var rails []powerRail
	for i := 0; i < 3; i++ {
		n := strconv.Itoa(i)
		b, err := read("rail_name_" + n)
		if err != nil {
			continue
		}
		r := powerRail{name: strings.TrimSpace(string(b))}
		if r.name == "" {
			continue
		}
		if v, err := readInt(read, "in_power"+n+"_input"); err == nil {
			r.watts, r.hasW = float64(v)/1e3, true
		}
		if v, err := readInt(read, "in_current"+n+"_input"); err == nil {
			r.amps, r.hasA = float64(v)/1e3, true
		}
		if v, err := readInt(read, "in_voltage"+n+"_input"); err == nil {
			r.volts, r.hasV = float64(v)/1e3, true
		}
		rails = append(rails, r)
	}
	return rails
}

func readInt(read func(string) ([]byte, error), f string) (int64, error) {
	b, err := read(f)
	if err != nil {
		return 0, err
	}
	return parseSysfsInt(b)
}

// ina3221HwmonRails pairs the hwmon layout's labelled bus voltages inN with
// the currents currN; the driver has no power attribute, so power is V × I.
// Unlabelled channels (the shunt voltages in4-in6, the current sum) are skipped.
func ina3221HwmonRails(sensors []hwmonSensor) []powerRail {
	var rails []powerRail
	for _, s := range sensors {
		if s.kind != "in" || s.label == "in"+strconv.Itoa(s.index) {
			continue
		}
		r := powerRail{name: s.label}
		mv, errV := s.valueOf("input")
		if errV == nil {
			r.volts, r.hasV = float64(mv)/1e3, true
		}
		for _, cs := range sensors {
			if cs.kind == "curr" && cs.index == s.index {
				if ma, err := cs.valueOf("input"); err == nil {
					r.amps, r.hasA = float64(ma)/1e3, true
					if errV == nil {
						// mV × mA is µW: one rounding, not two.
						r.watts, r.hasW = float64(mv*ma)/1e6, true
					}
				}
			}
		}
		if r.hasV || r.hasA {
			rails = append(rails, r)
		}
	}
	return rails
}

var powerSupplyStatuses = []string{"Charging", "Discharging", "Not charging", "Full", "Unknown"}

func (c *powerCollector) updatePowerSupply(ch chan<- prometheus.Metric, sys sysfs.FS) int {
	supplies, ok := readSysfs(c.logger, "power_supply", "class/power_supply", sys.PowerSupplyClass, false, "class/power_supply/*/*")
	if !ok {
		return 0
	}
	n := 0
	gauge := func(d *prometheus.Desc, v *int64, div float64, name string) {
		if v != nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(*v)/div, name)
			n++
		}
	}
	for name, ps := range supplies {
		ch <- prometheus.MustNewConstMetric(c.psInfo, prometheus.GaugeValue, 1, name, ps.Type)
		n++
		gauge(c.psOnline, ps.Online, 1, name)
		gauge(c.psCapacity, ps.Capacity, 100, name)
		gauge(c.psVolts, ps.VoltageNow, 1e6, name)
		gauge(c.psAmps, ps.CurrentNow, 1e6, name)
		// µWh to joules: 1 µWh = 3.6e-3 J.
		gauge(c.psEnergy, ps.EnergyNow, 1e3/3.6, name)
		gauge(c.psEnergyFull, ps.EnergyFull, 1e3/3.6, name)
		switch {
		case ps.PowerNow != nil:
			gauge(c.psWatts, ps.PowerNow, 1e6, name)
		case ps.VoltageNow != nil && ps.CurrentNow != nil:
			// Charge-counting batteries report no power_now.
			ch <- prometheus.MustNewConstMetric(c.psWatts, prometheus.GaugeValue, float64(*ps.VoltageNow)/1e6*float64(*ps.CurrentNow)/1e6, name)
			n++
		}
		if ps.Status != "" {
			for _, s := range powerSupplyStatuses {
				v := 0.0
				if strings.EqualFold(ps.Status, s) {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(c.psStatus, prometheus.GaugeValue, v, name, strings.ReplaceAll(strings.ToLower(s), " ", "_"))
			}
		}
	}
	return n
}

func (c *powerCollector) updateRAPL(ch chan<- prometheus.Metric, sys sysfs.FS) int {
	zones, ok := readSysfs(c.logger, "rapl", "class/powercap", func() ([]sysfs.RaplZone, error) { return sysfs.GetRaplZones(sys) }, false, "class/powercap/*/*")
	if !ok {
		return 0
	}
	n := 0
	for _, z := range zones {
		uj, err := z.GetEnergyMicrojoules()
		if err != nil {
			// energy_uj is root-only since the PLATYPUS side channel (CVE-2020-8694).
			skipSeries(c.logger, z.Path, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.raplJoules, prometheus.CounterValue, float64(uj)/1e6, z.Name+"-"+strconv.Itoa(z.Index))
		n++
	}
	return n
}

// Raspberry Pi throttle bits: the low nibble is "now", the same nibble
// shifted by 16 is "has occurred since boot".
var rpiConditions = []string{"under_voltage", "frequency_capped", "throttled", "soft_temp_limit"}

func (c *powerCollector) updateRPi(ch chan<- prometheus.Metric) int {
	source, bits, nowOnly, err := c.rpiThrottled()
	if err != nil {
		skipSeries(c.logger, "raspberry pi throttle flags", err)
		return 0
	}
	ch <- prometheus.MustNewConstMetric(c.rpiSource, prometheus.GaugeValue, 1, source)
	for i, cond := range rpiConditions {
		if nowOnly && i > 0 {
			break
		}
		ch <- prometheus.MustNewConstMetric(c.rpiCondition, prometheus.GaugeValue, float64(bits>>i&1), cond, "now")
		if !nowOnly {
			ch <- prometheus.MustNewConstMetric(c.rpiCondition, prometheus.GaugeValue, float64(bits>>(16+i)&1), cond, "since_boot")
		}
	}
	return 1
}

var errNoRPiSource = errors.New("no Raspberry Pi throttle source")

// rpiThrottled takes the first source the kernel has: the old get_throttled
// node, the rpi_volt hwmon alarm of current kernels, and only where both are
// missing the firmware mailbox. nowOnly means only under-voltage-now is known.
func (c *powerCollector) rpiThrottled() (source string, bits uint32, nowOnly bool, err error) {
	b, err := readFileNoBlock(sysFilePath("devices/platform/soc/soc:firmware/get_throttled"))
	if err == nil {
		bits, err = parseThrottledHex(b)
		return "get_throttled", bits, false, err
	}
	if dirs, err := hwmonDirs(); err == nil {
		for _, d := range dirs {
			if name, _ := readSysfsString(filepath.Join(d, "name")); name != "rpi_volt" {
				continue
			}
			v, err := readSysfsInt(filepath.Join(d, "in0_lcrit_alarm"))
			if err != nil {
				return "", 0, false, err
			}
			return "rpi_volt", uint32(v & 1), true, nil
		}
	}
	vcio := devFilePath("vcio")
	if _, err := os.Stat(vcio); err != nil {
		return "", 0, false, errNoRPiSource
	}
	bits, err = vcioGetThrottled(vcio)
	return "vcio", bits, false, err
}

// parseThrottledHex parses get_throttled as the firmware driver prints it:
// hex, with or without 0x.
func parseThrottledHex(b []byte) (uint32, error) {
	s := strings.TrimSpace(string(b))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("get_throttled: %w", err)
	}
	return uint32(v), nil
}

const (
	mboxTagGetThrottled = 0x00030046
	mboxResponseOK      = 0x80000000
	mboxWords           = 8
)

// vcioGetThrottled asks the VideoCore firmware through the /dev/vcio mailbox
// (the property interface vcgencmd uses). The request value 0 clears no
// sticky bits, so reading does not reset "since boot".
func vcioGetThrottled(path string) (uint32, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := [mboxWords]uint32{mboxWords * 4, 0, mboxTagGetThrottled, 4, 0, 0, 0, 0}
	// _IOWR(100, 0, char *): the size field is the pointer size of the kernel ABI.
	req := uintptr(3<<30 | unsafe.Sizeof(uintptr(0))<<16 | 100<<8)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return 0, &os.PathError{Op: "ioctl", Path: path, Err: errno}
	}
	raw := make([]byte, 0, mboxWords*4)
	for _, w := range buf {
		raw = binary.LittleEndian.AppendUint32(raw, w)
	}
	return parseMailboxThrottled(raw)
}

// parseMailboxThrottled checks a GET_THROTTLED property reply (little-endian,
// as every Pi runs; 32-bit words: size, code, tag, value size, response size, value …) and returns the value.
func parseMailboxThrottled(b []byte) (uint32, error) {
	if len(b) < 6*4 {
		return 0, errors.New("mailbox reply too short")
	}
	w := func(i int) uint32 { return binary.LittleEndian.Uint32(b[i*4:]) }
	switch {
	case w(1) != mboxResponseOK:
		return 0, fmt.Errorf("mailbox reply code %#x", w(1))
	case w(2) != mboxTagGetThrottled:
		return 0, fmt.Errorf("mailbox reply for tag %#x", w(2))
	case w(4)&mboxResponseOK == 0 || w(4)&^mboxResponseOK < 4:
		return 0, fmt.Errorf("mailbox tag not answered (%#x)", w(4))
	}
	return w(5), nil
}
