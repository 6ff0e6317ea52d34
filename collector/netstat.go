package collector

import (
	"fmt"
	"log/slog"
	"regexp"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// The netstat collector reports the kernel's own view of trouble (TCP
// retransmits and resets, UDP buffer overruns, a full conntrack table) and
// per-interface traffic, which the analyzer uses to tell a bad link from a
// saturated one.

var netdevExclude = kingpin.Flag("collector.netstat.device-exclude",
	"Regexp of network interfaces the netstat collector leaves out (loopback, container and bridge plumbing by default).").
	Default(`^(lo|veth.*|docker.*|br-.*|virbr.*)$`).Regexp()

func init() {
	registerCollector("netstat", true, newNetstatCollector)
}

type netstatCollector struct {
	logger  *slog.Logger
	exclude *regexp.Regexp

	tcp, udp                                             []counterField
	ctEntries, ctLimit, ctDrops, ctEarly, ctInsertFailed *prometheus.Desc
	estab                                                *prometheus.Desc
	dev                                                  []netdevField
}

type counterField struct {
	desc *prometheus.Desc
	get  func(*procfs.ProcSnmp, *procfs.ProcNetstat) *float64
}

type netdevField struct {
	desc *prometheus.Desc
	get  func(*procfs.NetDevLine) uint64
}

func newNetstatCollector(logger *slog.Logger) (Collector, error) {
	if _, err := procFS(); err != nil {
		return nil, err
	}
	c := &netstatCollector{
		logger:         logger,
		exclude:        *netdevExclude,
		ctEntries:      hostDesc("netstat", "conntrack_entries", "Connections in the netfilter conntrack table."),
		ctLimit:        hostDesc("netstat", "conntrack_entries_limit", "Size of the conntrack table (nf_conntrack_max); new flows are dropped when it is full."),
		ctDrops:        hostDesc("netstat", "conntrack_drops_total", "Packets dropped because a conntrack entry could not be created (table full), summed over CPUs."),
		ctEarly:        hostDesc("netstat", "conntrack_early_drops_total", "Conntrack entries evicted early to make room, summed over CPUs."),
		ctInsertFailed: hostDesc("netstat", "conntrack_insert_failed_total", "Conntrack entries that could not be inserted, summed over CPUs."),
		estab:          hostDesc("netstat", "tcp_established_connections", "TCP connections now in ESTABLISHED or CLOSE-WAIT."),
	}
	snmp := func(name, help string, get func(*procfs.ProcSnmp, *procfs.ProcNetstat) *float64) counterField {
		return counterField{hostDesc("netstat", name, help), get}
	}
	c.tcp = []counterField{
		snmp("tcp_sent_segments_total", "TCP segments sent, retransmissions excluded (Tcp OutSegs).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Tcp.OutSegs }),
		snmp("tcp_received_segments_total", "TCP segments received, errors included (Tcp InSegs).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Tcp.InSegs }),
		snmp("tcp_retransmitted_segments_total", "TCP segments retransmitted (Tcp RetransSegs).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Tcp.RetransSegs }),
		snmp("tcp_sent_resets_total", "TCP segments sent with RST (Tcp OutRsts).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Tcp.OutRsts }),
		snmp("tcp_established_resets_total", "TCP connections reset from ESTABLISHED or CLOSE-WAIT (Tcp EstabResets).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Tcp.EstabResets }),
		snmp("tcp_receive_errors_total", "TCP segments received in error (Tcp InErrs).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Tcp.InErrs }),
		snmp("tcp_timeouts_total", "TCP retransmission timeouts (TcpExt TCPTimeouts).", func(_ *procfs.ProcSnmp, n *procfs.ProcNetstat) *float64 { return n.TCPTimeouts }),
		snmp("tcp_listen_overflows_total", "Connections dropped because a listen queue was full (TcpExt ListenOverflows).", func(_ *procfs.ProcSnmp, n *procfs.ProcNetstat) *float64 { return n.ListenOverflows }),
		snmp("tcp_listen_drops_total", "Connection requests dropped at a listening socket for any reason (TcpExt ListenDrops).", func(_ *procfs.ProcSnmp, n *procfs.ProcNetstat) *float64 { return n.ListenDrops }),
	}
	c.udp = []counterField{
		snmp("udp_received_datagrams_total", "UDP datagrams delivered (Udp InDatagrams).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Udp.InDatagrams }),
		snmp("udp_sent_datagrams_total", "UDP datagrams sent (Udp OutDatagrams).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Udp.OutDatagrams }),
		snmp("udp_receive_errors_total", "UDP datagrams that could not be delivered, buffer errors included (Udp InErrors).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Udp.InErrors }),
		snmp("udp_receive_buffer_errors_total", "UDP datagrams dropped because a socket receive buffer was full (Udp RcvbufErrors).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Udp.RcvbufErrors }),
		snmp("udp_send_buffer_errors_total", "UDP datagrams dropped because a socket send buffer was full (Udp SndbufErrors).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Udp.SndbufErrors }),
		snmp("udp_no_port_datagrams_total", "UDP datagrams to a port nobody listens on (Udp NoPorts).", func(s *procfs.ProcSnmp, _ *procfs.ProcNetstat) *float64 { return s.Udp.NoPorts }),
	}
	dev := func(name, help string, get func(*procfs.NetDevLine) uint64) netdevField {
		return netdevField{hostDesc("network", name, help, "device"), get}
	}
	c.dev = []netdevField{
		dev("receive_bytes_total", "Bytes received by a network interface.", func(l *procfs.NetDevLine) uint64 { return l.RxBytes }),
		dev("transmit_bytes_total", "Bytes sent by a network interface.", func(l *procfs.NetDevLine) uint64 { return l.TxBytes }),
		dev("receive_packets_total", "Packets received by a network interface.", func(l *procfs.NetDevLine) uint64 { return l.RxPackets }),
		dev("transmit_packets_total", "Packets sent by a network interface.", func(l *procfs.NetDevLine) uint64 { return l.TxPackets }),
		dev("receive_errors_total", "Receive errors on a network interface.", func(l *procfs.NetDevLine) uint64 { return l.RxErrors }),
		dev("transmit_errors_total", "Transmit errors on a network interface.", func(l *procfs.NetDevLine) uint64 { return l.TxErrors }),
		dev("receive_drops_total", "Received packets a network interface dropped.", func(l *procfs.NetDevLine) uint64 { return l.RxDropped }),
		dev("transmit_drops_total", "Outgoing packets a network interface dropped.", func(l *procfs.NetDevLine) uint64 { return l.TxDropped }),
	}
	return c, nil
}

func (c *netstatCollector) Update(ch chan<- prometheus.Metric) error {
	fs, err := procFS()
	if err != nil {
		return err
	}
	n := c.updateProtocols(ch, fs)
	n += c.updateConntrack(ch, fs)
	n += c.updateNetDev(ch, fs)
	if n == 0 {
		return ErrNoData
	}
	return nil
}

func (c *netstatCollector) updateProtocols(ch chan<- prometheus.Metric, fs procfs.FS) int {
	self, err := readGuarded(procFilePath("self"), fs.Self)
	if err != nil {
		skipSeries(c.logger, "proc self", err)
		return 0
	}
	snmp, err := readGuarded(procFilePath("self/net/snmp"), self.Snmp)
	if err != nil {
		skipSeries(c.logger, "net/snmp", err)
		return 0
	}
	netstat, err := readGuarded(procFilePath("self/net/netstat"), self.Netstat)
	if err != nil {
		skipSeries(c.logger, "net/netstat", err)
	}
	n := 0
	for _, f := range append(c.tcp, c.udp...) {
		if v := f.get(&snmp, &netstat); v != nil {
			ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, *v)
			n++
		}
	}
	if snmp.Tcp.CurrEstab != nil {
		ch <- prometheus.MustNewConstMetric(c.estab, prometheus.GaugeValue, *snmp.Tcp.CurrEstab)
		n++
	}
	return n
}

func (c *netstatCollector) updateConntrack(ch chan<- prometheus.Metric, fs procfs.FS) int {
	n := 0
	// Present only while the nf_conntrack module is loaded.
	for _, f := range []struct {
		file string
		desc *prometheus.Desc
	}{{"nf_conntrack_count", c.ctEntries}, {"nf_conntrack_max", c.ctLimit}} {
		v, err := readSysfsInt(procFilePath("sys/net/netfilter", f.file))
		if err != nil {
			skipSeries(c.logger, f.file, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, float64(v))
		n++
	}
	stats, err := readGuarded(procFilePath("net/stat/nf_conntrack"), fs.ConntrackStat)
	if err == nil && len(stats) == 0 {
		err = fmt.Errorf("%s: no per-CPU lines", procFilePath("net/stat/nf_conntrack"))
	}
	if err != nil {
		skipSeries(c.logger, "net/stat/nf_conntrack", err)
		return n
	}
	var drop, early, insertFailed uint64
	for _, s := range stats {
		drop += s.Drop
		early += s.EarlyDrop
		insertFailed += s.InsertFailed
	}
	ch <- prometheus.MustNewConstMetric(c.ctDrops, prometheus.CounterValue, float64(drop))
	ch <- prometheus.MustNewConstMetric(c.ctEarly, prometheus.CounterValue, float64(early))
	ch <- prometheus.MustNewConstMetric(c.ctInsertFailed, prometheus.CounterValue, float64(insertFailed))
	return n + 3
}

func (c *netstatCollector) updateNetDev(ch chan<- prometheus.Metric, fs procfs.FS) int {
	devs, err := readGuarded(procFilePath("net/dev"), fs.NetDev)
	if err != nil {
		skipSeries(c.logger, "net/dev", err)
		return 0
	}
	n := 0
	for name, l := range devs {
		if c.exclude != nil && c.exclude.MatchString(name) {
			continue
		}
		for _, f := range c.dev {
			ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(f.get(&l)), name)
		}
		n++
	}
	return n
}
