#!/usr/bin/env bash
# Shared helpers for the bench scripts: scoped stress containers and a
# release build of gestor. Sourced, not run.

export DOCKER="${DOCKER:-/usr/bin/docker}"
readonly STRESS_IMAGE="${STRESS_IMAGE:-gestor/stress:latest}"
BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly BENCH_ROOT
export GESTOR="${BENCH_ROOT}/target/release/gestor"

# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

build_gestor() {
  (cd "${BENCH_ROOT}" && cargo build --release -q)
}

# start_containers SCOPE COUNT: COUNT small stress containers of mixed types,
# each capped at 1 % of a core so 500 of them fit on a small host.
start_containers() {
  local scope="$1" count="$2" i kind cmd
  local -a kinds=(cpu ram io disk)
  for ((i = 0; i < count; i++)); do
    kind="${kinds[i % 4]}"
    case "${kind}" in
      cpu) cmd=(stress --cpu 1) ;;
      ram) cmd=(stress --vm 1 --vm-bytes 4M --vm-hang 0) ;;
      io) cmd=(stress --io 1) ;;
      disk) cmd=(stress --hdd 1 --hdd-bytes 1M) ;;
    esac
    "${DOCKER}" run -d --cpus 0.01 --memory 64m \
      --label "gestor.scope=${scope}" --label gestor.managed=true \
      --label "gestor.type=${kind}" --name "${kind}-bench-${scope}-${i}" \
      "${STRESS_IMAGE}" "${cmd[@]}" >/dev/null
  done
}

# remove_containers SCOPE: removes the scope's containers, 50 at a time (a
# single `docker rm -f` of 1,000 asks the engine for all of them at once).
remove_containers() {
  "${DOCKER}" ps -aq --filter "label=gestor.scope=$1" | xargs -r -n 50 "${DOCKER}" rm -f >/dev/null
}

# dry_run_cycles SCOPE N [GESTOR FLAG...]: runs gestor in dry run (so the
# set of containers stays the same) on the scope's containers at a 0.5 s
# interval until N cycles after the first (which has no previous snapshot)
# are done; prints "median_ms max_rss_kib docker_requests_per_cycle
# gestor_cpu_ms_per_cycle dockerd_cpu_ms_per_cycle" over those N cycles (the
# requests from gestor_docker_requests_total; CPU is user + system time, of
# the whole gestor process and of dockerd, in 10 ms ticks). Each of those
# cycles' durations (ms) is also appended to $DRY_RUN_DURATIONS when set. The
# daemon is stopped on return or interruption.
dry_run_cycles() {
  local scope="$1" n="$2" log pid rss rss_max=0 port r0 r1 g0 g1 d0 d1 dockerd caller_trap
  shift 2
  # The caller's EXIT trap (its own cleanup) is put back on return.
  caller_trap="$(trap -p EXIT)"
  log="$(mktemp)"
  # The host's engine (its pid file): other dockerds (Docker-in-Docker
  # test nodes) may run too.
  dockerd="$(cat /var/run/docker.pid)"
  "${GESTOR}" run --dry-run --interval 0.5 --listen 127.0.0.1:0 --ready-file "${log}.ready" \
    --only-label "gestor.scope=${scope}" --logger-url '' --create-logger=false "$@" 2>"${log}" &
  pid=$!
  # shellcheck disable=SC2064 # expand now: the trap must stop this daemon
  trap "kill ${pid} 2>/dev/null || true; rm -f '${log}' '${log}.ready'" EXIT
  until [[ "$(grep -c '"cycle done"' "${log}")" -ge 1 ]]; do
    sleep 0.1
  done
  port="$(sed 's/.*://' "${log}.ready")"
  r0="$(docker_requests "${port}")"
  g0="$(cpu_ticks "${pid}")"
  d0="$(cpu_ticks "${dockerd}")"
  until [[ "$(grep -c '"cycle done"' "${log}")" -gt "${n}" ]]; do
    rss="$(awk '/VmRSS/ {print $2}' "/proc/${pid}/status")"
    ((rss > rss_max)) && rss_max="${rss}"
    sleep 0.2
  done
  g1="$(cpu_ticks "${pid}")"
  d1="$(cpu_ticks "${dockerd}")"
  r1="$(docker_requests "${port}")"
  kill "${pid}"
  wait "${pid}" || true
  grep '"cycle done"' "${log}" | tail -n "${n}" | jq -r '.duration_ms' >"${log}.ms"
  if [[ -n "${DRY_RUN_DURATIONS:-}" ]]; then
    cat "${log}.ms" >>"${DRY_RUN_DURATIONS}"
  fi
  printf '%s %s %s %s %s\n' "$(median <"${log}.ms")" "${rss_max}" \
    "$(echo "(${r1} - ${r0}) / ${n}" | bc -l)" \
    "$(echo "(${g1} - ${g0}) * 10 / ${n}" | bc -l)" \
    "$(echo "(${d1} - ${d0}) * 10 / ${n}" | bc -l)"
  rm -f "${log}" "${log}.ready" "${log}.ms"
  eval "${caller_trap:-trap - EXIT}"
}

# cpu_ticks PID: user + system CPU time of a process so far, in clock ticks
# (10 ms), its exited threads and waited-for children included.
cpu_ticks() {
  # The name (field 2) may hold spaces: count the fields after its ")".
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13 + $14 + $15}'
}

# docker_requests PORT: the Docker requests gestor at PORT has made so far.
docker_requests() {
  curl -fsS "http://127.0.0.1:$1/metrics" \
    | awk '/^gestor_docker_requests_total/ { n += $2 } END { print n + 0 }'
}

median() {
  sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
