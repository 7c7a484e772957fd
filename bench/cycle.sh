#!/usr/bin/env bash
# Cycle duration of gestor against `docker stats --no-stream` for the same
# containers, measured in the same run; and, optionally, daemon RSS and CPU
# over a long run at the 10 s interval.
#
#   bench/cycle.sh                 # 50 containers, 20 cycles
#   COUNT=100 CYCLES=20 bench/cycle.sh
#   SOAK_SECONDS=600 bench/cycle.sh   # also RSS/CPU over 10 min at 10 s
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

readonly COUNT="${COUNT:-50}"
readonly CYCLES="${CYCLES:-20}"
readonly STATS_RUNS="${STATS_RUNS:-5}"
readonly SOAK_SECONDS="${SOAK_SECONDS:-0}"
SCOPE="bench-cycle-$$"
readonly SCOPE
DAEMON_PID=""

cleanup() {
  if [[ -n "${DAEMON_PID}" ]]; then kill "${DAEMON_PID}" 2>/dev/null || true; fi
  remove_containers "${SCOPE}"
}

docker_stats_ms() {
  local -a names
  mapfile -t names < <("${DOCKER}" ps --filter "label=gestor.scope=${SCOPE}" --format '{{.Names}}')
  local i start end
  for ((i = 0; i < STATS_RUNS; i++)); do
    start=$(date +%s%N)
    "${DOCKER}" stats --no-stream "${names[@]}" >/dev/null
    end=$(date +%s%N)
    echo "scale=3; (${end} - ${start}) / 1000000" | bc
  done
}

soak() {
  local pid start_ticks end_ticks hz rss_max=0 rss t
  "${GESTOR}" run --dry-run --interval 10 --listen 127.0.0.1:0 \
    --only-label "gestor.scope=${SCOPE}" --logger-url '' --create-logger=false 2>/dev/null &
  DAEMON_PID=$!
  pid="${DAEMON_PID}"
  sleep 2
  hz="$(getconf CLK_TCK)"
  start_ticks="$(cpu_ticks "${pid}")"
  for ((t = 0; t < SOAK_SECONDS; t += 5)); do
    rss="$(awk '/VmRSS/ {print $2}' "/proc/${pid}/status")"
    ((rss > rss_max)) && rss_max="${rss}"
    sleep 5
  done
  end_ticks="$(cpu_ticks "${pid}")"
  rss="$(awk '/VmRSS/ {print $2}' "/proc/${pid}/status")"
  kill "${pid}"
  wait "${pid}" || true
  DAEMON_PID=""
  printf 'soak: %d s at a 10 s interval with %d containers\n' "${SOAK_SECONDS}" "${COUNT}"
  printf '  RSS now %.1f MiB, max %.1f MiB (goal <= 20 MiB)\n' \
    "$(echo "${rss} / 1024" | bc -l)" "$(echo "${rss_max} / 1024" | bc -l)"
  printf '  CPU %.3f %% of one core (goal <= 0.5 %%)\n' \
    "$(echo "(${end_ticks} - ${start_ticks}) / ${hz} / ${SOAK_SECONDS} * 100" | bc -l)"
}

main() {
  trap cleanup EXIT
  if ! command -v jq >/dev/null || ! command -v bc >/dev/null; then
    err "needs jq and bc (apt-get install jq bc)"
    exit 1
  fi
  build_gestor
  echo "starting ${COUNT} containers..."
  start_containers "${SCOPE}" "${COUNT}"
  sleep 3
  local gestor_ms stats_ms
  read -r gestor_ms _ < <(dry_run_cycles "${SCOPE}" "${CYCLES}")
  stats_ms="$(docker_stats_ms | median)"
  printf 'containers: %d\n' "${COUNT}"
  printf 'gestor cycle (median of %d): %.2f ms\n' "${CYCLES}" "${gestor_ms}"
  printf 'docker stats --no-stream (median of %d): %.1f ms\n' "${STATS_RUNS}" "${stats_ms}"
  printf 'ratio: gestor is %.0fx faster (goal >= 20x)\n' "$(echo "${stats_ms} / ${gestor_ms}" | bc -l)"
  if ((SOAK_SECONDS > 0)); then
    soak
  fi
}

main "$@"
