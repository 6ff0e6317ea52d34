package collector

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/wifi"
	"github.com/prometheus/client_golang/prometheus"
)

// The wifi collector reports the radio side of a wireless uplink through
// nl80211, and counts roams (BSSID changes) with a light background sampler,
// because two roams between scrapes look like none at scrape time.

func init() {
	registerCollector("wifi", true, newWifiCollector)
}

// wifiSampleInterval is how often the sampler looks for a BSSID change; a
// roam that comes back to the same access point within it goes unseen.
const wifiSampleInterval = 5 * time.Second

// wifiClient is the part of *wifi.Client the collector uses.
type wifiClient interface {
	Interfaces() ([]*wifi.Interface, error)
	BSS(*wifi.Interface) (*wifi.BSS, error)
	StationInfo(*wifi.Interface) ([]*wifi.StationInfo, error)
	Close() error
}

// dialNL80211 opens nl80211. Tests pass newWifi another dial, to use the
// /proc/net/wireless path against fixtures or to drive the roam counter.
func dialNL80211() (wifiClient, error) { return wifi.New() }

type wifiCollector struct {
	logger *slog.Logger

	mu     sync.Mutex // guards client use and the roam state
	client wifiClient // nil: no nl80211, /proc/net/wireless only
	bssid  map[string]string
	roams  map[string]uint64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	freq, signal, txRate, rxRate, retries, failures, beaconLoss, connected, info, roamsDesc *prometheus.Desc
}

func newWifiCollector(logger *slog.Logger) (Collector, error) {
	return newWifi(logger, dialNL80211)
}

func newWifi(logger *slog.Logger, dial func() (wifiClient, error)) (Collector, error) {
	if _, err := procFS(); err != nil {
		return nil, err
	}
	c := &wifiCollector{
		logger:     logger,
		bssid:      map[string]string{},
		roams:      map[string]uint64{},
		freq:       hostDesc("wifi", "frequency_hertz", "Centre frequency of the channel the interface is on.", "interface"),
		signal:     hostDesc("wifi", "signal_dbm", "Signal strength of the access point as received by the interface, in dBm.", "interface"),
		txRate:     hostDesc("wifi", "transmit_bitrate_bits_per_second", "Bitrate of the last frames sent to the access point.", "interface"),
		rxRate:     hostDesc("wifi", "receive_bitrate_bits_per_second", "Bitrate of the last frames received from the access point.", "interface"),
		retries:    hostDesc("wifi", "transmit_retries_total", "Frame transmissions retried in the current association.", "interface"),
		failures:   hostDesc("wifi", "transmit_failures_total", "Frames given up after all retries (current association; /proc/net/wireless: since the driver loaded).", "interface"),
		beaconLoss: hostDesc("wifi", "beacon_loss_total", "Beacons from the access point that did not arrive.", "interface"),
		connected:  hostDesc("wifi", "connected_seconds", "Time since the interface associated with its access point.", "interface"),
		info:       hostDesc("wifi", "station_info", "The network and access point an interface is associated with; always 1.", "interface", "ssid", "bssid"),
		roamsDesc:  hostDesc("wifi", "roams_total", "Changes of access point (BSSID) seen by the exporter since it started, sampled every 5s.", "interface"),
	}
	client, err := dial()
	if err != nil {
		// Without cfg80211 (no wifi hardware, or a container) there is
		// nothing to sample; /proc/net/wireless may still be there.
		logger.Debug("nl80211 unavailable, using /proc/net/wireless", "err", err)
		return c, nil
	}
	c.client = client
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.sampler()
	return c, nil
}

func (c *wifiCollector) sampler() {
	defer close(c.done)
	t := time.NewTicker(wifiSampleInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			c.sample()
			c.mu.Unlock()
		}
	}
}

// sample records the BSSID of every associated station interface. Called with mu held.
func (c *wifiCollector) sample() []wifiStation {
	ifis, err := c.client.Interfaces()
	if err != nil {
		c.logger.Debug("nl80211 interfaces", "err", err)
		return nil
	}
	var out []wifiStation
	for _, ifi := range ifis {
		if ifi.Type != wifi.InterfaceTypeStation || ifi.Name == "" {
			continue
		}
		bss, err := c.client.BSS(ifi)
		if err != nil {
			continue // not associated
		}
		bssid := bss.BSSID.String()
		switch last, seen := c.bssid[ifi.Name]; {
		case !seen:
			c.roams[ifi.Name] = 0 // the counter exists from the first association on
		case last != bssid:
			c.roams[ifi.Name]++
		}
		c.bssid[ifi.Name] = bssid
		out = append(out, wifiStation{ifi, bss})
	}
	return out
}

type wifiStation struct {
	ifi *wifi.Interface
	bss *wifi.BSS
}

func (c *wifiCollector) Update(ch chan<- prometheus.Metric) error {
	if c.client == nil {
		return c.updateProcWireless(ch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	stations := c.sample()
	for _, s := range stations {
		name := s.ifi.Name
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, name, s.bss.SSID, s.bss.BSSID.String())
		mhz := s.ifi.Frequency
		if mhz == 0 {
			mhz = s.bss.Frequency
		}
		ch <- prometheus.MustNewConstMetric(c.freq, prometheus.GaugeValue, float64(mhz)*1e6, name)
		infos, err := c.client.StationInfo(s.ifi)
		if err != nil || len(infos) == 0 {
			skipSeries(c.logger, "station info "+name, err)
			continue
		}
		si := infos[0] // a station interface has exactly one peer, its access point
		ch <- prometheus.MustNewConstMetric(c.signal, prometheus.GaugeValue, float64(si.Signal), name)
		ch <- prometheus.MustNewConstMetric(c.txRate, prometheus.GaugeValue, float64(si.TransmitBitrate), name)
		ch <- prometheus.MustNewConstMetric(c.rxRate, prometheus.GaugeValue, float64(si.ReceiveBitrate), name)
		ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(si.TransmitRetries), name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(si.TransmitFailed), name)
		ch <- prometheus.MustNewConstMetric(c.beaconLoss, prometheus.CounterValue, float64(si.BeaconLoss), name)
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, si.Connected.Seconds(), name)
	}
	for name, n := range c.roams {
		ch <- prometheus.MustNewConstMetric(c.roamsDesc, prometheus.CounterValue, float64(n), name)
	}
	if len(stations) == 0 && len(c.roams) == 0 {
		return ErrNoData
	}
	return nil
}

func (c *wifiCollector) updateProcWireless(ch chan<- prometheus.Metric) error {
	proc, err := procFS()
	if err != nil {
		return err
	}
	ws, err := proc.Wireless()
	if errors.Is(err, os.ErrNotExist) {
		return ErrNoData // no wireless extensions: no wifi
	}
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return ErrNoData
	}
	for _, w := range ws {
		ch <- prometheus.MustNewConstMetric(c.signal, prometheus.GaugeValue, float64(w.QualityLevel), w.Name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(w.DiscardedRetry), w.Name)
		ch <- prometheus.MustNewConstMetric(c.beaconLoss, prometheus.CounterValue, float64(w.MissedBeacon), w.Name)
	}
	return nil
}

// Close stops the sampler and releases the netlink socket.
func (c *wifiCollector) Close() error {
	if c.client == nil {
		return nil
	}
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		err = c.client.Close()
	})
	return err
}
