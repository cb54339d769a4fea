# pg_retention — the two commands: `make run` (demo) and `make test`.
# Each installs whatever is missing first (scripts/ensure-toolchain.sh).
SHELL := /bin/bash
# `make test PG=18`: one PostgreSQL major (default: every major of pgrx.toml).
export PG

.PHONY: all setup install test run stop bench fuzz package clean

all: test

setup:
	@bash scripts/ensure-toolchain.sh

install: setup
	@bash scripts/install.sh

test: setup
	@bash scripts/test.sh

run: setup
	@bash scripts/demo.sh

# Release tarballs, one per major: target/package/pg_retention-<version>-pg<NN>-<arch>.tar.gz
package: setup
	@bash scripts/package.sh

stop:
	@bash scripts/cluster.sh stop demo

bench: setup
	@bash bench/run.sh $(BENCH_ARGS)

# Randomized oracle test: make fuzz CASES=1000 SEED=1 (prints the seed of
# every failing case).
CASES ?= 200
SEED ?= 1
fuzz: install
	@bash scripts/cluster.sh start test >/dev/null
	@bash tests/fuzz/run.sh $(CASES) $(SEED)

clean:
	@bash scripts/cluster.sh destroy demo || true
	@bash scripts/cluster.sh destroy test || true
	cargo clean
