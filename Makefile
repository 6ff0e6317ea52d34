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

.PHONY: help build run test fuzz bench-ping bench-host lint clean

help:
	@echo "make run         build and run smokemon_exporter on its embedded default config (:9917)"
	@echo "make test        install what the tests need (as root) and run the whole suite"
	@echo "make fuzz        run every fuzz target for FUZZTIME (default 30s) each"
	@echo "make bench-ping  smokemon vs smokeping_prober vs fping, 10/100/1000 loopback targets"
	@echo "make bench-host  host collectors vs node_exporter: scrape time, size, RSS"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o smokemon_exporter ./cmd/smokemon_exporter

run: build
	./smokemon_exporter $(ARGS)

test:
	.ci/test

FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) .ci/fuzz

bench-ping:
	$(GO) run ./internal/bench/ping $(ARGS)

bench-host:
	$(GO) run ./internal/bench/host $(ARGS)

lint:
	test -z "$$(gofmt -l .)" || (gofmt -l . && false)
	$(GO) vet ./...

clean:
	rm -f smokemon_exporter
