#!/usr/bin/env bash
# gestor's figures against the kernel's own per-cgroup accounting, over the
# same window, on real containers: a steady CPU container, a fork-heavy one
# (a shell running /bin/true in a loop: its work is done by children that
# live milliseconds) and a RAM container. Prints the three comparisons; the
# same measurements are asserted (within 10 %) by tests/accuracy.rs, which
# this runs. Needs root and a Docker engine (`make setup`).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

main() {
  local out
  out="$(cd "${BENCH_ROOT}" && cargo test --release -q --test accuracy -- \
    --nocapture --test-threads=1 2>&1)" || {
    printf '%s\n' "${out}" >&2
    err "the accuracy test failed"
    return 1
  }
  printf 'accuracy (gestor vs the cgroup, over the same 6 s window):\n'
  grep -o 'accuracy: .*' <<<"${out}" | sed 's/^accuracy: /  /'
}

main "$@"
