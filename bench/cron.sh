#!/usr/bin/env bash
#
# Benchmark of the generator (cron/create_containers.sh): wall time of one run
# creating 10 containers, and the CPU it costs on the host side that runs it.
#
#   real run       the script as cron runs it (default caps), real engine:
#                  wall time, and user+sys CPU of the script and every process
#                  it waits for (bash, od, timeout, the docker CLI calls);
#   script only    the same run with the docker client replaced by /bin/true:
#                  the CPU of the script's own work (randomness, argument
#                  building, locking, logging, process starts);
#   docker CLI     the difference of the two;
#   engine         CPU that dockerd + containerd used during the real run
#                  (the engine is shared with other work: indicative only).
#
# Each figure is measured RUNS times (default 5); the median is printed and
# also written to bench/out/cron.txt. Containers are labelled with a unique
# gestor.scope and removed after each run.
#
# Usage: bench/cron.sh   [env: RUNS=5 COUNT=10 GESTOR_BENCH_IMAGE=gestor/stress:latest]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly REPO_ROOT
readonly GEN="${REPO_ROOT}/cron/create_containers.sh"
readonly DOCKER=/usr/bin/docker
readonly RUNS="${RUNS:-5}"
readonly COUNT="${COUNT:-10}"
readonly IMAGE="${GESTOR_BENCH_IMAGE:-gestor/stress:latest}"
readonly OUT_DIR="${REPO_ROOT}/bench/out"
CLK_TCK="$(getconf CLK_TCK)"
readonly CLK_TCK

SCOPE=""
WORK=""

readonly PROG="bench/cron"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

cleanup_containers() {
  local -a ids
  [[ -n "${SCOPE}" ]] || return 0
  mapfile -t ids < <("${DOCKER}" ps -aq --filter "label=gestor.scope=${SCOPE}")
  if ((${#ids[@]} > 0)); then
    "${DOCKER}" rm -f "${ids[@]}" >/dev/null
  fi
}

cleanup() {
  cleanup_containers || true
  [[ -z "${WORK}" ]] || rm -rf -- "${WORK}"
}

# CPU ticks (user+sys) used so far by the engine's processes.
engine_ticks() {
  local pid total=0 stat
  local -a fields
  for pid in $(pgrep -x dockerd; pgrep -x containerd); do
    stat="$(cat "/proc/${pid}/stat" 2>/dev/null)" || continue
    stat="${stat##*) }"
    # After "pid (comm) ": field 3 is the state; utime and stime are 14, 15.
    read -r -a fields <<<"${stat}"
    total=$((total + fields[11] + fields[12]))
  done
  echo "${total}"
}

# Runs the generator under bash's `time`; appends "wall user sys" (seconds,
# ms precision) to file $1. Remaining arguments go to the generator.
timed_run() {
  local out="$1" status=0
  shift
  local TIMEFORMAT='%3R %3U %3S'
  { time "${GEN}" --quiet -n "${COUNT}" --image "${IMAGE}" \
    --label "gestor.scope=${SCOPE}" --log-file "${WORK}/gen.log" \
    --lock-file "${WORK}/gen.lock" "$@" 2>"${WORK}/gen.err" || status=$?; } 2>>"${out}"
  if ((status != 0)); then
    err "the generator failed (status ${status}): $(cat "${WORK}/gen.err")"
    return 1
  fi
}

# Median of column $2 (1-based) of file $1, to 3 decimals.
median() {
  awk -v c="$2" '{print $c}' "$1" | sort -g \
    | awk '{v[NR]=$1} END {if (NR%2) m=v[(NR+1)/2]; else m=(v[NR/2]+v[NR/2+1])/2; printf "%.3f", m}'
}

main() {
  local i e0 e1 made report
  "${DOCKER}" image inspect "${IMAGE}" >/dev/null 2>&1 \
    || { err "image ${IMAGE} is absent: run scripts/build-images.sh"; exit 1; }
  SCOPE="bench-cron-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  WORK="$(mktemp -d /tmp/gestor-bench-cron.XXXXXX)"
  trap cleanup EXIT
  echo "bench/cron: ${RUNS} runs of ${COUNT} containers, image ${IMAGE}, $(nproc) CPUs," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
  for ((i = 1; i <= RUNS; i++)); do
    e0="$(engine_ticks)"
    timed_run "${WORK}/real"
    e1="$(engine_ticks)"
    echo "$(((e1 - e0) * 1000 / CLK_TCK))" >>"${WORK}/engine_ms"
    made="$("${DOCKER}" ps -q --filter "label=gestor.scope=${SCOPE}" --filter status=running \
      | grep -c . || true)"
    if ((made != COUNT)); then
      err "run ${i} left ${made} running containers, expected ${COUNT}"
      exit 1
    fi
    cleanup_containers
    GESTOR_DOCKER=/bin/true timed_run "${WORK}/fake"
    printf '  run %d: real %s (wall user sys, s); script only %s\n' "${i}" \
      "$(tail -n 1 "${WORK}/real")" "$(tail -n 1 "${WORK}/fake")"
  done

  local wall cpu_real cpu_script engine
  wall="$(median "${WORK}/real" 1)"
  awk '{printf "%.3f\n", $2 + $3}' "${WORK}/real" >"${WORK}/real_cpu"
  awk '{printf "%.3f\n", $2 + $3}' "${WORK}/fake" >"${WORK}/fake_cpu"
  cpu_real="$(median "${WORK}/real_cpu" 1)"
  cpu_script="$(median "${WORK}/fake_cpu" 1)"
  engine="$(median "${WORK}/engine_ms" 1)"
  report="$(
    printf 'generator, one run creating %d containers (median of %d runs):\n' "${COUNT}" "${RUNS}"
    printf '  wall time                         %7.3f s\n' "${wall}"
    printf '  CPU, script + docker CLI calls    %7.3f s (user+sys)\n' "${cpu_real}"
    printf '  CPU, script itself (no docker)    %7.3f s (user+sys)\n' "${cpu_script}"
    printf '  CPU, docker CLI calls (difference)%7.3f s\n' \
      "$(awk -v a="${cpu_real}" -v b="${cpu_script}" 'BEGIN {printf "%.3f", a - b}')"
    printf '  CPU, dockerd + containerd         %7.3f s (shared engine, indicative)\n' \
      "$(awk -v m="${engine}" 'BEGIN {printf "%.3f", m / 1000}')"
  )"
  echo "${report}"
  mkdir -p "${OUT_DIR}"
  printf '%s\n%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) CPUs" "${report}" \
    >"${OUT_DIR}/cron.txt"
}

main "$@"
