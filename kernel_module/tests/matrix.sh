#!/usr/bin/env bash
# The kernel matrix of kernel_module/: the module is built (with no
# warnings, and by DKMS) against the headers of every kernel in it, each in
# a build root of its Debian suite, and the qemu test suite (run.sh) runs on
# the oldest, the host's and the newest kernel (`make test-kernel`), or on
# all of them (--all, `make test-kernels`, which also reads 100,000
# processes, run.sh --big, and proves that a failed DKMS build never fails
# a kernel's installation, dkms_hook.sh). Closing line: "kernel_module
# matrix: N passed, M failed".
#
# Usage (as root): kernel_module/tests/matrix.sh [--all]
set -euo pipefail

# shellcheck disable=SC1091 # lib.sh is checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSED=0
FAILED=0
RESULTS=()

# run_suite SUITE [--build-only]: run.sh for SUITE's kernel; its counts
# are added to ours.
run_suite() {
  local suite="$1" out line start=${SECONDS}
  shift
  out="$(mktemp)"
  GESTOR_KM_SUITE="${suite}" "${KM_TESTS}/run.sh" "$@" 2>&1 | tee "${out}" || true
  line="$(grep -E '^kernel_module .*: [0-9]+ passed, [0-9]+ failed$' "${out}" | tail -n 1)"
  rm -f "${out}"
  if [[ -z "${line}" ]]; then
    FAILED=$((FAILED + 1))
    RESULTS+=("${suite}${1:+ $1}: run.sh did not finish")
    return
  fi
  PASSED=$((PASSED + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"${line}")))
  FAILED=$((FAILED + $(sed -E 's/.*, ([0-9]+) failed$/\1/' <<<"${line}")))
  RESULTS+=("${suite}${1:+ $1}: ${line#kernel_module } ($((SECONDS - start)) s)")
}

# dkms_hook.sh: a failed DKMS build never fails a kernel's installation.
run_dkms_hook() {
  local out line start=${SECONDS}
  out="$(mktemp)"
  "${KM_TESTS}/dkms_hook.sh" 2>&1 | tee "${out}" || true
  line="$(grep -E '^dkms hook: [0-9]+ passed, [0-9]+ failed$' "${out}" | tail -n 1)"
  rm -f "${out}"
  if [[ -z "${line}" ]]; then
    FAILED=$((FAILED + 1))
    RESULTS+=("dkms hook: did not finish")
    return
  fi
  PASSED=$((PASSED + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"${line}")))
  FAILED=$((FAILED + $(sed -E 's/.*, ([0-9]+) failed$/\1/' <<<"${line}")))
  RESULTS+=("${line} ($((SECONDS - start)) s)")
}

main() {
  local suite all=0 start=${SECONDS}
  [[ "${1:-}" == --all ]] && all=1
  if [[ ${EUID} -ne 0 ]]; then
    err "run as root"
    exit 1
  fi
  # The build roots of the other suites, made (or refreshed) side by side:
  # mostly downloads and unpacking, about a minute each.
  km_apt_install mmdebstrap
  for suite in "${KM_SUITES[@]}"; do
    [[ "${suite}" == "${KM_HOST_SUITE}" ]] ||
      GESTOR_KM_SUITE="${suite}" bash -c 'source "$1/lib.sh" && km_suite_root' _ \
        "${KM_TESTS}" &
  done
  wait
  log "build roots ready after $((SECONDS - start)) s"
  for suite in "${KM_SUITES[@]}"; do
    if ((all)) || [[ "${suite}" == "${KM_SUITES[0]}" || "${suite}" == "${KM_HOST_SUITE}" ||
      "${suite}" == "${KM_SUITES[-1]}" ]]; then
      run_suite "${suite}"
    else
      run_suite "${suite}" --build-only
    fi
  done
  if ((all)); then
    run_suite "${KM_HOST_SUITE}" --big
    run_dkms_hook
  fi
  printf '%s\n' "${RESULTS[@]}"
  log "matrix wall time $((SECONDS - start)) s"
  echo "kernel_module matrix: ${PASSED} passed, ${FAILED} failed"
  ((FAILED == 0))
}

main "$@"
