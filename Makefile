# gestor: one entry point for building and testing every part.
# `make test` is the repo's test command (CI runs it through .ci/run): it
# installs and starts what it needs on a Debian/Ubuntu host as root.

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build release run test setup lint test-scripts test-rust test-cron \
	test-logger test-kernel test-kernels test-kernel-debug test-stack test-swarm \
	test-e2e bench clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# The one command that runs the whole system on this host (see README):
# the stack (gestor, log service, Prometheus, Grafana), the kernel module
# when this kernel's headers are installed, and the generator's cron job.
run:
	./scripts/run-stack.sh --with-module --with-cron

test: setup lint test-scripts test-rust test-cron test-logger test-kernel test-stack test-swarm test-e2e
	@echo "make test: all suites passed"

setup:
	./scripts/setup-test-host.sh

# Every Rust, Python and shell file of the repository: cargo fmt and clippy,
# then scripts/lint.sh: ruff check and ruff format --check (the root
# ruff.toml), shellcheck over every shell script git tracks (found by name
# and #! line), and scripts/check_layers.py (no import circle, no arrow back
# up in src/ and logger/app). .pre-commit-config.yaml runs the same.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	./scripts/lint.sh

test-scripts:
	./scripts/tests/test_apt_mirror.sh
	./scripts/tests/test_common.sh
	./scripts/tests/test_lint.sh
	python3 -m unittest discover -s scripts/tests -p 'test_*.py'

# Unit tests that need the Docker engine are #[ignore]d so that
# `cargo test --lib` stays a fast loop; this runs them too.
test-rust:
	$(CARGO) build --release
	$(CARGO) test --all-targets -- --test-threads=2 --include-ignored

test-cron:
	./cron/tests/run.sh

test-logger:
	./logger/tests/run.sh

# The kernel module on the kernel matrix (Debian's 5.10, 6.1, 6.12 and the
# newest): built against every kernel's headers, and the qemu suite run on
# the oldest, the host's 6.1 and the newest.
test-kernel:
	./kernel_module/tests/matrix.sh

# The qemu suite on every kernel of the matrix, and 100,000 processes read
# end to end (not in `make test`: about 20 minutes more).
test-kernels:
	./kernel_module/tests/matrix.sh --all

# The qemu suite on a debug build (lockdep, PROVE_RCU, KASAN, kmemleak) of
# the newest kernel, two NUMA nodes (the first build takes about 40 min).
test-kernel-debug:
	./kernel_module/debug-kernel.sh

test-stack:
	./tests/stack/run.sh

# The fleet stack (deploy/swarm) on a real 3-node Docker Swarm of
# Docker-in-Docker nodes: discovery, governing, records, the node-down drill.
test-swarm:
	./tests/swarm/run.sh

test-e2e:
	./tests/e2e/run.sh

bench:
	./bench/run.sh

clean:
	$(CARGO) clean
	$(MAKE) -C kernel_module clean
