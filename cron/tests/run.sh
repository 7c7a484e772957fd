#!/usr/bin/env bash
#
# The generator's test suite (`make test-cron`): real Docker engine, real cron
# daemon. Makes sure the engine answers and the test images exist, then runs
# the slow real-cron test in the background while the others run one after
# the other. Every test scopes its containers with a unique gestor.scope label
# and removes them, also on failure.
#
# Usage: cron/tests/run.sh [TEST...]   e.g. run.sh lock failures
# (names: the test_<name>.sh files in this directory; default all).
set -euo pipefail

TESTS_DIR="$(cd "$(dirname "$0")" && pwd)"
readonly TESTS_DIR
REPO_ROOT="$(cd "${TESTS_DIR}/../.." && pwd)"
readonly REPO_ROOT
readonly DOCKER=/usr/bin/docker
readonly IMAGES=(gestor/stress:latest debian:bookworm-slim)
readonly ORDER=(shellcheck install failures lock one_run many_runs)
readonly BACKGROUND=cron
readonly TEST_TIMEOUT=600

readonly PROG="cron/tests"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

ensure_prerequisites() {
  local image
  apt_install_missing shellcheck cron
  "${REPO_ROOT}/scripts/ensure-docker.sh"
  for image in "${IMAGES[@]}"; do
    if ! "${DOCKER}" image inspect "${image}" >/dev/null 2>&1; then
      "${REPO_ROOT}/scripts/build-images.sh"
      break
    fi
  done
}

run_one() {
  local name="$1" t0 status=0
  t0="${SECONDS}"
  timeout "${TEST_TIMEOUT}" "${TESTS_DIR}/test_${name}.sh" || status=$?
  if ((status == 0)); then
    printf -- '---- %s: passed in %d s\n' "${name}" $((SECONDS - t0))
  else
    printf -- '---- %s: FAILED (status %d) in %d s\n' "${name}" "${status}" $((SECONDS - t0))
  fi
  return "${status}"
}

main() {
  local name bg_pid="" bg_out failed=() selected=() t0="${SECONDS}" run_bg=false
  if [[ $# -gt 0 ]]; then
    selected=("$@")
  else
    selected=("${ORDER[@]}" "${BACKGROUND}")
  fi
  for name in "${selected[@]}"; do
    [[ -x "${TESTS_DIR}/test_${name}.sh" ]] || { err "no test named '${name}'"; exit 2; }
    [[ "${name}" != "${BACKGROUND}" ]] || run_bg=true
  done
  ensure_prerequisites

  bg_out="$(mktemp /tmp/gestor-cron-suite.XXXXXX)"
  # shellcheck disable=SC2064 # expand now: the path is fixed
  trap "rm -f -- '${bg_out}'" EXIT
  if [[ "${run_bg}" == "true" ]]; then
    echo "---- ${BACKGROUND}: started in the background (real cron, up to ~130 s)"
    run_one "${BACKGROUND}" >"${bg_out}" 2>&1 &
    bg_pid=$!
  fi
  for name in "${selected[@]}"; do
    [[ "${name}" != "${BACKGROUND}" ]] || continue
    run_one "${name}" || failed+=("${name}")
  done
  if [[ -n "${bg_pid}" ]]; then
    wait "${bg_pid}" || failed+=("${BACKGROUND}")
    cat "${bg_out}"
  fi

  if ((${#failed[@]} > 0)); then
    err "FAILED: ${failed[*]} ($((SECONDS - t0)) s)"
    exit 1
  fi
  echo "cron/tests: all ${#selected[@]} tests passed in $((SECONDS - t0)) s"
}

main "$@"
