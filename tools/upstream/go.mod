// The upstream servers the tests run against, built from the Go module proxy
// by .ci/upstream (each with its own release go.mod, exactly as upstream
// builds it; this module only pins and verifies the versions). Its own
// go.mod, so the project's stays lean. docker-compose.yml pins the same
// releases; internal/bundle's TestCompose checks that.
module github.com/smokemon/smokemon/tools/upstream

go 1.26.8

require (
	// Prometheus 3.x is module version v0.3MM.P for release 3.MM.P.
	github.com/prometheus/prometheus v0.316.0
	github.com/prometheus/alertmanager v0.35.0
	github.com/VictoriaMetrics/VictoriaMetrics v1.151.0
)
