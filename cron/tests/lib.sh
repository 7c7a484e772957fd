# shellcheck shell=bash
#
# Helpers shared by the generator's tests; sourced by each test_*.sh, not run.
# Every container a test creates carries `gestor.scope=<SCOPE>`, a value
# unique to that test run; tests count and remove only those containers.

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRON_DIR="$(cd "${TESTS_DIR}/.." && pwd)"
REPO_ROOT="$(cd "${CRON_DIR}/.." && pwd)"
GEN="${CRON_DIR}/create_containers.sh"
DOCKER=/usr/bin/docker
TEST_IMAGE="${GESTOR_TEST_IMAGE:-gestor/stress:latest}"
# shellcheck disable=SC2034 # used by the tests that source this file
readonly TESTS_DIR CRON_DIR REPO_ROOT GEN DOCKER TEST_IMAGE
export GESTOR_STRESS_IMAGE="${TEST_IMAGE}"
# The generator must not see settings from the caller's environment.
unset GESTOR_COUNT GESTOR_LABELS GESTOR_LOG_FILE GESTOR_LOCK_FILE GESTOR_SYSLOG \
  GESTOR_DOCKER GESTOR_CPUS GESTOR_MEMORY GESTOR_VM_BYTES GESTOR_HDD_BYTES \
  GESTOR_JOBS GESTOR_DOCKER_TIMEOUT GESTOR_CRON_FILE GESTOR_UNIT_DIR

T_NAME=""
SCOPE=""
WORK=""
GEN_BASE=()

# Starts a test: unique scope, a private work directory, cleanup on exit.
t_init() {
  T_NAME="$1"
  SCOPE="cron-${T_NAME}-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  WORK="$(mktemp -d "/tmp/gestor-cron-${T_NAME}.XXXXXX")"
  # The options gen() passes; `exec "${GEN}" "${GEN_BASE[@]}" ...` in a
  # subshell gives a background run whose pid is the generator's own.
  GEN_BASE=(--label "gestor.scope=${SCOPE}" --log-file "${WORK}/gen.log"
    --lock-file "${WORK}/gen.lock" --image "${TEST_IMAGE}")
  trap t_cleanup EXIT
  trap 'exit 130' INT TERM
}

t_cleanup() {
  local status=$? pid
  if declare -F on_cleanup >/dev/null; then
    on_cleanup || true
  fi
  # A generator still running in the background would create containers
  # after the removal below: stop it (it finishes its docker runs) first.
  for pid in $(jobs -p); do
    kill -TERM "${pid}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  remove_scoped
  rm -rf -- "${WORK}"
  exit "${status}"
}

fail() {
  printf 'FAIL %s: %s\n' "${T_NAME}" "$*" >&2
  exit 1
}

ok() {
  printf 'ok   %s: %s\n' "${T_NAME}" "$*"
}

# IDs of every container (any state) carrying this test's scope label and,
# optionally, all the labels KEY=VALUE given as arguments.
scoped_ids() {
  local -a filters=(--filter "label=gestor.scope=${SCOPE}")
  local label
  for label in "$@"; do
    filters+=(--filter "label=${label}")
  done
  "${DOCKER}" ps -aq --no-trunc "${filters[@]}"
}

scoped_count() {
  scoped_ids | grep -c . || true
}

remove_scoped() {
  local -a ids
  [[ -n "${SCOPE}" ]] || return 0
  mapfile -t ids < <(scoped_ids)
  if ((${#ids[@]} > 0)); then
    "${DOCKER}" rm -f "${ids[@]}" >/dev/null 2>&1 || true
  fi
}

# Runs the generator with this test's scope label, log file and lock file;
# extra arguments follow (later ones win).
gen() {
  "${GEN}" "${GEN_BASE[@]}" "$@"
}

# Small caps for tests that create many containers on a shared 2-core host.
# shellcheck disable=SC2034 # used by the tests that source this file
readonly SMALL=(--cpus 0.02 --memory 32m --vm-bytes 4M --hdd-bytes 1M)

assert_eq() {
  if [[ "$1" != "$2" ]]; then
    fail "$3: expected '$1', got '$2'"
  fi
}

assert_contains() {
  if [[ "$1" != *"$2"* ]]; then
    fail "$3: '$2' not found in: $1"
  fi
}
