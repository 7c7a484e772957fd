#!/usr/bin/env bash
#
# gestor's generator: creates COUNT Docker "stress" containers (default 10),
# each of a random type among cpu, ram, io and disk, named `<type>-<12 hex>`
# and labelled gestor.managed=true, gestor.type=<type>. Randomness comes from
# /dev/urandom. Meant to run every 30 s from cron (see cron/install.sh) or a
# systemd timer; runs never overlap (flock -n) and each run appends a one-line
# summary to a log file or to syslog.
#
# Name and labels are given to `docker run` at once, so a container is never
# half-named or unlabelled; a container that was created but could not start is
# removed before the run ends.
#
# Exit status: 0 all created (or --dry-run / --check passed), 1 some containers
# could not be created, 2 usage error, 3 docker missing or unreachable,
# 4 image absent, 75 another run holds the lock (the run is skipped),
# 128+N interrupted by signal N (the containers already made are kept).
set -euo pipefail

readonly PROG="create_containers.sh"
readonly TAG="gestor-generator"
readonly TYPES=(cpu ram io disk)
readonly HEX_PER_NAME=12
readonly EXIT_FAILED=1
readonly EXIT_USAGE=2
readonly EXIT_DOCKER=3
readonly EXIT_IMAGE=4
readonly EXIT_LOCKED=75
readonly MAX_COUNT=1000
readonly RESERVED_LABELS=(gestor.managed gestor.type)

# Settings: defaults, then environment, then flags (parse_args).
DOCKER="${GESTOR_DOCKER:-/usr/bin/docker}"
COUNT="${GESTOR_COUNT:-10}"
IMAGE="${GESTOR_STRESS_IMAGE:-containerstack/alpine-stress}"
VM_BYTES="${GESTOR_VM_BYTES:-64M}"
HDD_BYTES="${GESTOR_HDD_BYTES:-64M}"
CPUS="${GESTOR_CPUS:-0.25}"
MEMORY="${GESTOR_MEMORY:-128m}"
JOBS="${GESTOR_JOBS:-4}"
DOCKER_TIMEOUT="${GESTOR_DOCKER_TIMEOUT:-60}"
LOG_FILE="${GESTOR_LOG_FILE-/var/log/gestor-generator.log}"
SYSLOG="${GESTOR_SYSLOG:-false}"
LOCK_FILE="${GESTOR_LOCK_FILE:-}"
DRY_RUN=false
CHECK_ONLY=false
QUIET=false
PRINT_NAMES=false
EXTRA_LABELS=()

# Run state.
RUN_ARGS=()
STRESS_CMD=()
TYPE_OF=()
NAME_OF=()
CREATED=0
FAILED=0
RUN_DIR=""
STARTED_AT=""
START_NS=0
ABORTED=""

# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../scripts/lib/common.sh"

usage() {
  cat <<EOF
Usage: ${PROG} [OPTIONS]

Creates COUNT stress containers of random types (cpu, ram, io, disk), named
<type>-<12 hex> and labelled gestor.managed=true, gestor.type=<type>.

Commands per type (the image has no ENTRYPOINT):
  cpu   stress --cpu 1
  ram   stress --vm 1 --vm-bytes VM_BYTES --vm-keep
  io    stress --io 1
  disk  stress --hdd 1 --hdd-bytes HDD_BYTES

Options (environment variable in brackets):
  -n, --count N        containers per run, 0..${MAX_COUNT} (default 10) [GESTOR_COUNT]
      --image IMG      stress image (default containerstack/alpine-stress)
                       [GESTOR_STRESS_IMAGE]
      --label KEY=VAL  extra label on every container; repeatable
                       [GESTOR_LABELS, comma-separated]
      --vm-bytes SIZE  memory a ram container touches (default 64M) [GESTOR_VM_BYTES]
      --hdd-bytes SIZE bytes a disk container writes (default 64M) [GESTOR_HDD_BYTES]
      --cpus N         docker --cpus cap per container, 0 = none (default 0.25)
                       [GESTOR_CPUS]
      --memory SIZE    docker --memory cap per container, 0 = none (default 128m)
                       [GESTOR_MEMORY]
  -j, --jobs N         docker runs in parallel, 1..16 (default 4) [GESTOR_JOBS]
      --timeout SECS   bound on each docker call (default 60) [GESTOR_DOCKER_TIMEOUT]
      --log-file PATH  append the run summary here; '' = no file
                       (default /var/log/gestor-generator.log) [GESTOR_LOG_FILE]
      --syslog         also send the summary to syslog (logger -t ${TAG})
                       [GESTOR_SYSLOG=true]
      --lock-file PATH lock that keeps runs from overlapping
                       (default /run/lock/gestor-generator.lock) [GESTOR_LOCK_FILE]
      --dry-run        print the docker commands; create nothing, touch no docker
      --check          only check docker and the image, then exit
  -q, --quiet          print nothing on stdout
      --print-names    print only the names of the containers this run
                       created, one per line (for programs; errors still go
                       to stderr and the summary to the log)
  -h, --help           show this help
The docker client is GESTOR_DOCKER (default /usr/bin/docker); it honours
DOCKER_HOST.

Exit status: 0 ok, 1 some containers failed, 2 usage, 3 docker missing or
unreachable, 4 image absent, 75 another run is in progress (run skipped),
128+N stopped by signal N (in-flight docker runs finish first).
EOF
}

usage_error() {
  err "$*"
  err "try '${PROG} --help'"
  exit "${EXIT_USAGE}"
}

# Prints the current time in nanoseconds since the epoch.
now_ns() {
  local t="${EPOCHREALTIME:-}"
  if [[ -n "${t}" ]]; then
    t="${t/./}"
    t="${t/,/}"
    printf '%s000\n' "${t}"
  else
    date +%s%N
  fi
}

# Appends one line to the log sinks (file and/or syslog). Never fails the run.
log_line() {
  local line="$1"
  if [[ -n "${LOG_FILE}" ]]; then
    if ! { printf '%s %s[%d]: %s\n' "${STARTED_AT}" "${TAG}" "$$" "${line}" \
      >>"${LOG_FILE}"; } 2>/dev/null; then
      err "warning: cannot write ${LOG_FILE}; use --log-file PATH or --syslog"
    fi
  fi
  if [[ "${SYSLOG}" == "true" ]]; then
    logger -t "${TAG}[$$]" -- "${line}" 2>/dev/null \
      || err "warning: logger failed; summary not sent to syslog"
  fi
}

# Reports an error on stderr and in the log, then exits with status $1.
fail() {
  local status="$1"
  shift
  err "$*"
  log_line "error: $*"
  exit "${status}"
}

is_uint() {
  [[ "$1" =~ ^[0-9]{1,9}$ ]]
}

# Takes the value of an option, failing when it is missing.
need_value() {
  if [[ $# -lt 2 ]]; then
    usage_error "option $1 needs a value"
  fi
}

add_label() {
  local label="$1" key reserved
  key="${label%%=*}"
  if [[ "${label}" != *=* || -z "${key}" ]]; then
    usage_error "bad label '${label}': expected KEY=VALUE"
  fi
  for reserved in "${RESERVED_LABELS[@]}"; do
    if [[ "${key}" == "${reserved}" ]]; then
      usage_error "label ${key} is set by the generator itself"
    fi
  done
  EXTRA_LABELS+=("${label}")
}

parse_args() {
  local label
  if [[ -n "${GESTOR_LABELS:-}" ]]; then
    local -a env_labels
    IFS=',' read -r -a env_labels <<<"${GESTOR_LABELS}"
    for label in "${env_labels[@]}"; do
      if [[ -n "${label}" ]]; then
        add_label "${label}"
      fi
    done
  fi
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -n | --count) need_value "$@"; COUNT="$2"; shift 2 ;;
      --image) need_value "$@"; IMAGE="$2"; shift 2 ;;
      --label) need_value "$@"; add_label "$2"; shift 2 ;;
      --vm-bytes) need_value "$@"; VM_BYTES="$2"; shift 2 ;;
      --hdd-bytes) need_value "$@"; HDD_BYTES="$2"; shift 2 ;;
      --cpus) need_value "$@"; CPUS="$2"; shift 2 ;;
      --memory) need_value "$@"; MEMORY="$2"; shift 2 ;;
      -j | --jobs) need_value "$@"; JOBS="$2"; shift 2 ;;
      --timeout) need_value "$@"; DOCKER_TIMEOUT="$2"; shift 2 ;;
      --log-file) need_value "$@"; LOG_FILE="$2"; shift 2 ;;
      --syslog) SYSLOG=true; shift ;;
      --lock-file) need_value "$@"; LOCK_FILE="$2"; shift 2 ;;
      --dry-run) DRY_RUN=true; shift ;;
      --check) CHECK_ONLY=true; shift ;;
      -q | --quiet) QUIET=true; shift ;;
      --print-names) PRINT_NAMES=true; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage_error "unknown argument '$1'" ;;
    esac
  done
  validate_settings
}

validate_settings() {
  if ! is_uint "${COUNT}" || ((10#${COUNT} > MAX_COUNT)); then
    usage_error "bad count '${COUNT}': expected an integer 0..${MAX_COUNT}"
  fi
  COUNT=$((10#${COUNT}))
  if ! is_uint "${JOBS}" || ((10#${JOBS} < 1 || 10#${JOBS} > 16)); then
    usage_error "bad --jobs '${JOBS}': expected an integer 1..16"
  fi
  JOBS=$((10#${JOBS}))
  if ! is_uint "${DOCKER_TIMEOUT}" || ((10#${DOCKER_TIMEOUT} < 1)); then
    usage_error "bad --timeout '${DOCKER_TIMEOUT}': expected seconds >= 1"
  fi
  if [[ -z "${IMAGE}" || "${IMAGE}" == -* || "${IMAGE}" =~ [[:space:]] ]]; then
    usage_error "bad image name '${IMAGE}'"
  fi
  if [[ ! "${VM_BYTES}" =~ ^[1-9][0-9]*[bBkKmMgG]?$ ]]; then
    usage_error "bad --vm-bytes '${VM_BYTES}': expected e.g. 64M"
  fi
  if [[ ! "${HDD_BYTES}" =~ ^[1-9][0-9]*[bBkKmMgG]?$ ]]; then
    usage_error "bad --hdd-bytes '${HDD_BYTES}': expected e.g. 64M"
  fi
  if [[ ! "${CPUS}" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    usage_error "bad --cpus '${CPUS}': expected a number such as 0.25 (0 = no cap)"
  fi
  if [[ ! "${MEMORY}" =~ ^[0-9]+[bBkKmMgG]?$ ]]; then
    usage_error "bad --memory '${MEMORY}': expected e.g. 128m (0 = no cap)"
  fi
  if [[ "${SYSLOG}" != "true" && "${SYSLOG}" != "false" ]]; then
    usage_error "bad GESTOR_SYSLOG '${SYSLOG}': expected true or false"
  fi
  if [[ -z "${LOCK_FILE}" ]]; then
    if [[ -d /run/lock && -w /run/lock ]]; then
      LOCK_FILE=/run/lock/gestor-generator.lock
    else
      LOCK_FILE="${TMPDIR:-/tmp}/gestor-generator.lock"
    fi
  fi
}

# Sets STRESS_CMD to the stress command of a container type.
stress_command() {
  case "$1" in
    cpu) STRESS_CMD=(stress --cpu 1) ;;
    ram) STRESS_CMD=(stress --vm 1 --vm-bytes "${VM_BYTES}" --vm-keep) ;;
    io) STRESS_CMD=(stress --io 1) ;;
    disk) STRESS_CMD=(stress --hdd 1 --hdd-bytes "${HDD_BYTES}") ;;
    *) return 1 ;;
  esac
}

# Fills the global array RUN_ARGS with the `docker run` arguments (after
# `docker`) for one container.
build_run_args() {
  local type="$1" name="$2" label
  stress_command "${type}"
  RUN_ARGS=(run --detach --name "${name}"
    --label gestor.managed=true --label "gestor.type=${type}")
  for label in "${EXTRA_LABELS[@]}"; do
    RUN_ARGS+=(--label "${label}")
  done
  if [[ ! "${CPUS}" =~ ^0+(\.0+)?$ ]]; then
    RUN_ARGS+=(--cpus "${CPUS}")
  fi
  if [[ ! "${MEMORY}" =~ ^0+[bBkKmMgG]?$ ]]; then
    RUN_ARGS+=(--memory "${MEMORY}")
  fi
  RUN_ARGS+=("${IMAGE}" "${STRESS_CMD[@]}")
}

# Draws COUNT (type, name) pairs from /dev/urandom into TYPE_OF and NAME_OF:
# one byte picks the type (256 is a multiple of 4, so no bias), six bytes
# make the 12-hex-digit name suffix. One read for the whole run.
draw_containers() {
  local per=$((1 + HEX_PER_NAME / 2)) hex i off
  TYPE_OF=()
  NAME_OF=()
  ((COUNT > 0)) || return 0
  hex="$(od -An -v -tx1 -N "$((COUNT * per))" /dev/urandom | tr -d ' \n')"
  if ((${#hex} != COUNT * per * 2)); then
    fail "${EXIT_FAILED}" "cannot read random bytes from /dev/urandom"
  fi
  for ((i = 0; i < COUNT; i++)); do
    off=$((i * per * 2))
    TYPE_OF[i]="${TYPES[$((16#${hex:off:2} % ${#TYPES[@]}))]}"
    NAME_OF[i]="${TYPE_OF[i]}-${hex:off+2:HEX_PER_NAME}"
  done
}

# Runs docker with a time bound so that a hung engine cannot hold the lock.
docker_bounded() {
  timeout --kill-after=5 "${DOCKER_TIMEOUT}" "${DOCKER}" "$@"
}

preflight() {
  local out
  if [[ "${DOCKER}" != */* ]]; then
    DOCKER="$(command -v "${DOCKER}" || true)"
  fi
  if [[ -z "${DOCKER}" || ! -x "${DOCKER}" ]]; then
    fail "${EXIT_DOCKER}" "docker client not found (${GESTOR_DOCKER:-/usr/bin/docker}):" \
      "install Docker (Debian: apt-get install docker.io) or set GESTOR_DOCKER"
  fi
  if ! out="$(docker_bounded version --format '{{.Server.Version}}' 2>&1)"; then
    out="$(printf '%s' "${out}" | tr -s '\n' ' ')"
    out="${out#"${out%%[![:space:]]*}"}"
    fail "${EXIT_DOCKER}" "cannot reach the Docker engine" \
      "(${DOCKER_HOST:-unix:///var/run/docker.sock}): ${out:0:300}" \
      "(check that dockerd runs and that $(id -un) may use it)"
  fi
  if ! docker_bounded image inspect --format '{{.Id}}' "${IMAGE}" >/dev/null 2>&1; then
    fail "${EXIT_IMAGE}" "image ${IMAGE} is not present on this host: get it with" \
      "'docker pull ${IMAGE}', or on a host without a registry build the local" \
      "equivalent with scripts/build-images.sh and pass --image gestor/stress:latest"
  fi
}

take_lock() {
  local fd
  if ! exec {fd}>>"${LOCK_FILE}"; then
    fail "${EXIT_FAILED}" "cannot open lock file ${LOCK_FILE}; use --lock-file PATH"
  fi
  if ! flock -n "${fd}"; then
    err "another run holds ${LOCK_FILE}; skipping this run"
    log_line "skipped: another run holds ${LOCK_FILE}"
    exit "${EXIT_LOCKED}"
  fi
}

# Creates container $1 (index) in the background job; writes $1.ok or $1.fail
# in RUN_DIR. Signals are ignored so that every docker call ends normally and
# the cleanup below always runs.
create_one() {
  local i="$1" type="${TYPE_OF[$1]}" name="${NAME_OF[$1]}"
  local cidfile="${RUN_DIR}/${i}.cid" errfile="${RUN_DIR}/${i}.err" cid msg
  trap '' INT TERM HUP
  build_run_args "${type}" "${name}"
  if docker_bounded "${RUN_ARGS[0]}" --cidfile "${cidfile}" "${RUN_ARGS[@]:1}" \
    >/dev/null 2>"${errfile}"; then
    : >"${RUN_DIR}/${i}.ok"
    return 0
  fi
  # Created but not started (or the client gave up): remove it. docker writes
  # the cidfile as soon as the container exists; without it, the name is ours
  # unless docker refused it as already in use.
  cid=""
  [[ -s "${cidfile}" ]] && cid="$(<"${cidfile}")"
  if [[ -n "${cid}" ]]; then
    docker_bounded rm -f "${cid}" >/dev/null 2>&1 || true
  elif ! grep -qiE 'conflict|already in use' "${errfile}"; then
    docker_bounded rm -f "${name}" >/dev/null 2>&1 || true
  fi
  msg="$(tr '\n' ' ' <"${errfile}")"
  err "cannot create ${name}: ${msg:0:300}"
  : >"${RUN_DIR}/${i}.fail"
  return 1
}

# Waits for background job $1 even when a trapped signal interrupts `wait`.
wait_job() {
  local pid="$1"
  while kill -0 "${pid}" 2>/dev/null; do
    wait "${pid}" 2>/dev/null || true
  done
}

on_signal() {
  ABORTED="$1"
}

cleanup() {
  if [[ -n "${RUN_DIR}" && -d "${RUN_DIR}" ]]; then
    rm -rf -- "${RUN_DIR}"
  fi
}

dry_run() {
  local i
  for ((i = 0; i < COUNT; i++)); do
    build_run_args "${TYPE_OF[i]}" "${NAME_OF[i]}"
    printf '%q' "${DOCKER}"
    printf ' %q' "${RUN_ARGS[@]}"
    printf '\n'
  done
  if [[ "${QUIET}" != "true" ]]; then
    printf '# dry run: %d docker commands printed, nothing created\n' "${COUNT}"
  fi
}

# Launches the creations, at most JOBS at a time, and prints the names made.
create_all() {
  local i
  local -a pids=()
  CREATED=0
  FAILED=0
  for ((i = 0; i < COUNT; i++)); do
    [[ -z "${ABORTED}" ]] || break
    if ((${#pids[@]} >= JOBS)); then
      wait_job "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
    [[ -z "${ABORTED}" ]] || break
    create_one "${i}" &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do
    wait_job "${i}"
  done
  for ((i = 0; i < COUNT; i++)); do
    if [[ -e "${RUN_DIR}/${i}.ok" ]]; then
      CREATED=$((CREATED + 1))
      if [[ "${PRINT_NAMES}" == "true" ]]; then
        printf '%s\n' "${NAME_OF[i]}"
      elif [[ "${QUIET}" != "true" ]]; then
        printf 'created %s\n' "${NAME_OF[i]}"
      fi
    elif [[ -e "${RUN_DIR}/${i}.fail" ]]; then
      FAILED=$((FAILED + 1))
    elif [[ -s "${RUN_DIR}/${i}.cid" ]]; then
      # The job died without reporting (killed): remove what it created.
      docker_bounded rm -f "$(<"${RUN_DIR}/${i}.cid")" >/dev/null 2>&1 || true
      FAILED=$((FAILED + 1))
    fi
  done
}

main() {
  parse_args "$@"
  STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  START_NS="$(now_ns)"
  draw_containers
  if [[ "${DRY_RUN}" == "true" ]]; then
    dry_run
    return 0
  fi
  if [[ "${CHECK_ONLY}" == "true" ]]; then
    LOG_FILE=""
    SYSLOG=false
    preflight
    [[ "${QUIET}" == "true" ]] || echo "${PROG}: docker answers and ${IMAGE} is present"
    return 0
  fi
  take_lock
  preflight
  RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gestor-generator.XXXXXX")"
  trap cleanup EXIT
  trap 'on_signal 130' INT
  trap 'on_signal 143' TERM
  trap 'on_signal 129' HUP
  create_all
  local ms summary
  ms=$((($(now_ns) - START_NS) / 1000000))
  summary="$(printf 'created=%d failed=%d requested=%d duration=%d.%03ds image=%s' \
    "${CREATED}" "${FAILED}" "${COUNT}" $((ms / 1000)) $((ms % 1000)) "${IMAGE}")"
  [[ -z "${ABORTED}" ]] || summary+=" aborted=signal"
  log_line "${summary}"
  [[ "${QUIET}" == "true" || "${PRINT_NAMES}" == "true" ]] || echo "${TAG}: ${summary}"
  if [[ -n "${ABORTED}" ]]; then
    exit "${ABORTED}"
  fi
  if ((FAILED > 0)); then
    exit "${EXIT_FAILED}"
  fi
}

main "$@"
