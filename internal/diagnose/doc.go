// Package diagnose is the analyzer's end-to-end diagnosis suite: the real
// exporter, a real Prometheus with the shipped rules and the analyzer run
// in the namespace lab (internal/lab) while faults are injected on real
// packets, and every verdict is scored against the known truth: kind,
// target, origin hop, top blame, detection and resolution latency, and
// spurious incidents over a clean baseline. `go test` runs a short set (as
// root; it skips otherwise); `make diagnose` (DIAGNOSE=full) the full one;
// DIAGNOSE_CASES=dns,bloat-young,... (TestDiagnoseCases) the named cases.
package diagnose
