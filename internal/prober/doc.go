// Package prober is smokemon's plain probe code: one request in, one result
// out, no Prometheus types and no state between probes. HTTP with its phase
// timings, a stub resolver (/etc/hosts, then the nameservers of
// /etc/resolv.conf), DNS exchanges with TCP fallback, timed connects, and
// iperf3 runs. The collectors of package probes schedule these and count
// what they return; tests drive them against loopback servers without root.
package prober
