# smokemon — build, run, test, bench. `make help` lists the targets.

GO      := $(shell .ci/ensure-go)
PKG     := github.com/prometheus/common/version
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
LDFLAGS := -s -w \
	-X $(PKG).Version=$(VERSION) \
	-X $(PKG).Revision=$(shell git rev-parse --short HEAD 2>/dev/null) \
	-X $(PKG).Branch=$(shell git rev-parse --abbrev-ref HEAD 2>/dev/null) \
	-X $(PKG).BuildUser=$(shell id -un)@$(shell hostname) \
	-X $(PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
ARGS    ?=

.PHONY: help build run build-analyzer run-analyzer test hostile fuzz diagnose bench-mesh bench-ping bench-host bench-analyzer soak lint clean release packages

help:
	@echo "make run         build and run smokemon_exporter on its embedded default config (:9917)"
	@echo "make run-analyzer  build and run smokemon_analyzer against PROMETHEUS_URL (default serve on :9918)"
	@echo "make test        install what the tests need (as root) and run the whole suite"
	@echo "make hostile     the hostile-tree suite on every fixture file (CI runs one file in eight)"
	@echo "make fuzz        run every fuzz target for FUZZTIME (default 30s) each"
	@echo "make diagnose    the analyzer's full end-to-end diagnosis set in the namespace lab (root, ~40 min): score table"
	@echo "make bench-ping  smokemon vs smokeping_prober vs fping, 10/100/1000 loopback targets"
	@echo "make bench-mesh  mesh prober/responder CPU per peer beside ping per target (loopback)"
	@echo "make bench-host  host collectors vs node_exporter: scrape time, size, RSS"
	@echo "make bench-analyzer  analyzer cycles over 10 and 10 000 nodes in VictoriaMetrics, unsharded and two shards (~30 min)"
	@echo "make soak        an hour's soak: every collector, 300 loopback targets, RSS/goroutine slopes (ARGS=-duration=...)"
	@echo "make lint        gofmt, go vet and staticcheck (the first step of make test)"
	@echo "make release     static binaries for linux amd64/arm64/armv7/armv6 and tarballs in DIST (dist/)"
	@echo "make packages    .deb and .rpm packages in DIST (dist/), built with nfpm"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o smokemon_exporter ./cmd/smokemon_exporter

run: build
	./smokemon_exporter $(ARGS)

build-analyzer:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o smokemon_analyzer ./cmd/smokemon_analyzer

# Any PromQL API with the nodes' series: Prometheus, VictoriaMetrics, Mimir, Thanos.
PROMETHEUS_URL ?= http://localhost:9090
run-analyzer: build-analyzer
	./smokemon_analyzer --prometheus.url=$(PROMETHEUS_URL) $(or $(ARGS),serve)

test:
	.ci/test

diagnose:
	DIAGNOSE=full $(GO) test -count=1 -v -timeout 60m -run TestDiagnoseFull ./internal/diagnose

# Every file of every fixture tree through every hostile variant (CI runs a
# sample of one file in eight).
hostile:
	$(GO) test -count=1 -v -run '^TestHostileTree$$' ./collector -hostile.all

FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) .ci/fuzz

bench-mesh:
	$(GO) run ./tools/bench/mesh $(ARGS)

bench-ping:
	$(GO) run ./tools/bench/ping $(ARGS)

bench-host:
	$(GO) run ./tools/bench/host $(ARGS)

bench-analyzer:
	$(GO) run ./tools/bench/analyzer -backend=victoriametrics $(ARGS)

# Not part of CI: it takes over an hour (flags: go run ./tools/soak -h).
soak:
	GO=$(GO) $(GO) run ./tools/soak $(ARGS)

lint:
	.ci/lint

# Releases: static binaries per architecture in $(DIST)/linux-ARCH/, and a
# tarball per architecture with install.sh, the units and the default config.
DIST     ?= dist
ARCHES   ?= amd64 arm64 armv7 armv6
# The analyzer is packaged as soon as its command exists.
BINARIES := smokemon_exporter $(if $(wildcard cmd/smokemon_analyzer/*.go),smokemon_analyzer)

release:
	@set -e; for a in $(ARCHES); do \
		case $$a in armv*) goarch=arm goarm=$${a#armv} ;; *) goarch=$$a goarm= ;; esac; \
		for b in $(BINARIES); do \
			echo "release: $(DIST)/linux-$$a/$$b"; \
			GOOS=linux GOARCH=$$goarch GOARM=$$goarm CGO_ENABLED=0 \
				$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/linux-$$a/$$b ./cmd/$$b; \
		done; \
		VERSION='$(VERSION)' deploy/tarball.sh $(DIST) $$a $(BINARIES); \
	done

# Packages, built with nfpm (a Go tool dependency: go.mod's tool line). Debian's
# armhf package carries the armv6 binary, so Raspberry Pi OS on a Pi Zero/1
# (armhf userland on an ARMv6 CPU) runs it; the rpm for armv7hl carries armv7.
PACKAGES ?= deb:amd64:amd64 deb:arm64:arm64 deb:arm6:armv6 rpm:amd64:amd64 rpm:arm64:arm64 rpm:arm7:armv7

packages: release
	@set -e; v=$$(deploy/pkg-version '$(VERSION)'); for p in $(PACKAGES); do \
		fmt=$${p%%:*}; rest=$${p#*:}; arch=$${rest%%:*}; dir=$${rest#*:}; \
		for b in $(BINARIES); do \
			[ -x $(DIST)/linux-$$dir/$$b ] || continue; \
			SMOKEMON_BIN=$(DIST)/linux-$$dir SMOKEMON_VERSION=$$v NFPM_ARCH=$$arch \
				$(GO) tool nfpm pkg --config deploy/nfpm/$$b.yaml --packager $$fmt --target $(DIST)/; \
		done; \
	done

clean:
	rm -f smokemon_exporter smokemon_analyzer
