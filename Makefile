# SkyPanel. On a fresh Debian/Ubuntu machine, as root (or with sudo):
#   make run    install what is missing, build, start the whole platform locally
#   make test   install what is missing, build, lint, run every test (e2e included)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# deps must finish before build, lint and the tests use what it installed.
.NOTPARALLEL:

# `sudo make` resets PATH: find Go in its usual place then, and keep it on PATH for the tools
# (workflowcheck and the tests run `go` themselves).
ifeq ($(origin GO),undefined)
GO := $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
endif
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)

BIN := $(CURDIR)/bin
# The e2e tests in ./testsuite find skypanel, skypanel-agent and temporal here.
export SKYPANEL_BIN_DIR := $(BIN)

TEST_TIMEOUT ?= 25m
# The e2e suite's own bound: past make test's 30-minute budget, so a slow machine shows a
# suite that took too long (gotestsum prints its time) rather than a panic that loses every
# result. Its parallel tests (about sixteen) mostly wait on the platform's timers and
# containers: eight at a time on two cores, so the longest waits (the crash loop's heals) start
# early instead of ending the run.
E2E_TIMEOUT ?= 40m
E2E_PARALLEL ?= 8
# BenchmarkDensity alone deploys and deletes 300 organizations' apps.
BENCH_TIMEOUT ?= 75m
BENCHTIME ?= 1x
# Which benchmarks make bench runs (a go test -bench pattern), e.g. make bench BENCH=ZeroDowntime.
BENCH ?= .
# Passed to `skypanel dev` by make run, e.g. make run RUN_ARGS='-h'.
RUN_ARGS ?=

# Go files to format-check: everything but generated/vendored trees and local state.
GO_FILES = $(shell find . \( -path ./.git -o -path ./.data -o -path ./bin -o -name testdata -o -name node_modules -o -name vendor \) -prune -o -name '*.go' -print)

.PHONY: help deps base-images build run test lint vet fmt-check workflowcheck bench clean

help:
	@echo "make run     install what is missing, build, start SkyPanel locally (API :8080, Temporal UI :8233, apps :8088)"
	@echo "make test    install what is missing, build, vet + gofmt + workflowcheck, go test ./... (e2e included)"
	@echo "make deps    only install/start the prerequisites (scripts/deps.sh)"
	@echo "make base-images  build the buildpacks' runtime images when missing (scripts/base-images.sh)"
	@echo "make build   build bin/skypanel and bin/skypanel-agent"
	@echo "make lint    go vet, gofmt check, workflowcheck on ./workflows/..."
	@echo "make bench   run the benchmarks and print the figures as one table (BENCH=$(BENCH) BENCHTIME=$(BENCHTIME))"
	@echo "make clean   remove the built binaries (keeps bin/temporal, bin/workflowcheck and .data/)"

deps:
	@bash scripts/deps.sh

# The buildpacks' runtime images (node, python, php), built locally when missing: no registry
# is needed. A few minutes the first time, well under a second after.
base-images: deps
	@bash scripts/base-images.sh

build:
	$(GO) build -o bin/skypanel ./cmd/skypanel
	$(GO) build -o bin/skypanel-agent ./cmd/skypanel-agent

run: deps base-images build
	exec ./bin/skypanel dev $(RUN_ARGS)

# The e2e suite runs after the other packages, not beside them: it restarts dockerd, which
# the Docker unit tests use too.
# Every test runs everywhere: a missing dependency fails its test, it never skips. The counts
# of tests run (and skipped, which should stay 0) are printed at the end, from the JSON logs
# kept in .data/.
test: deps base-images build lint
	@mkdir -p .data
	$(BIN)/gotestsum --format pkgname-and-test-fails --jsonfile .data/test-units.json -- -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/testsuite$$')
	$(BIN)/gotestsum --format testname --jsonfile .data/test-e2e.json -- -count=1 -timeout $(E2E_TIMEOUT) -parallel $(E2E_PARALLEL) ./testsuite
	@bash scripts/test-count.sh .data/test-units.json .data/test-e2e.json

lint: vet fmt-check workflowcheck

vet:
	$(GO) vet ./...

fmt-check:
	@bad="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$bad" ]; then echo "gofmt: these files need formatting (gofmt -w):"; echo "$$bad"; exit 1; fi; \
	echo "gofmt: ok"

workflowcheck:
	@if [ ! -x bin/workflowcheck ]; then \
		echo "workflowcheck: bin/workflowcheck is not installed (make deps), skipped"; \
	elif [ -z "$$($(GO) list ./workflows/... 2>/dev/null)" ]; then \
		echo "workflowcheck: no packages under ./workflows, skipped"; \
	else \
		echo "bin/workflowcheck ./workflows/..."; \
		bin/workflowcheck ./workflows/...; \
	fi

# Every benchmark is one run of a whole scenario (BENCHTIME=1x), on a stack billing hourly (the
# tests' 3 s period would run billing over every app all the time); the output is kept in
# .data/bench.txt and summed up as one table by scripts/bench-table.sh.
bench: deps base-images build
	@mkdir -p .data
	SKYPANEL_E2E_BILLING_PERIOD=1h $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count 1 -timeout $(BENCH_TIMEOUT) -v ./db ./temporal/nodegateway ./testsuite | tee .data/bench.txt
	@bash scripts/bench-table.sh .data/bench.txt

clean:
	rm -f bin/skypanel bin/skypanel-*
