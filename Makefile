# chaosloop — see README.md. Every target installs what it needs.
GO      ?= go
BIN     := bin/chaosloop
PKGS    := ./...
# Lab tests need root and install engines on first use; CI sets
# CHAOSLOOP_REQUIRE_LAB=1 so that a skipped lab test fails.
# -p 1: the lab tests share two cores; one package at a time keeps their
# timings honest. -timeout bounds one package: the kind backend's tests
# (clusters/kind/kindlab, a cluster used as a real one through every
# deploy-mode engine, then the quickstart's on k3s) take about 37 minutes
# on a 2-core machine; CI's own 90-minute limit bounds the whole run.
TESTFLAGS ?= -timeout 60m -p 1

.PHONY: all build test test-short bench fuzz vet demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/chaosloop

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet build
	$(GO) test $(TESTFLAGS) $(PKGS)

test-short:
	$(GO) test -short $(PKGS)

# Speed and memory, recorded in README.md. Long soaks live here, not in test.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./topology/
	CHAOSLOOP_BENCH_RATE=400,800,1200 $(GO) test -run '^$$' -bench Pipeline -benchtime 1x -timeout 20m ./load/
	$(GO) test -run '^$$' -bench QuickstartThroughput -benchtime 1x -timeout 30m ./runner/

# Decoding, defaults, validation, lint and analysis of fuzzed scenario
# files, each within 1 s of CPU and 100 MB; then the pre-parse scanner
# against yaml.v3 (it must never count less). FUZZTIME=10m for a long run.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./scenarios/
	$(GO) test -run '^$$' -fuzz '^FuzzScan$$' -fuzztime $(FUZZTIME) ./scenarios/

# The main job on a fresh machine (as root): installs what is missing,
# runs the quickstart lab under load with its faults, prints the scorecard
# and where the HTML report is.
demo: build
	$(BIN) validate scenarios/quickstart.yaml
	$(BIN) analyze scenarios/quickstart.yaml
	$(BIN) run scenarios/quickstart.yaml --seed 1

clean:
	rm -rf bin
