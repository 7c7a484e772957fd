#!/usr/bin/env bash
# /metrics answer time while gestor's spool fsyncs on a disk that stress
# containers keep busy, before and after the spool's I/O left the async
# runtime, in the same run and under the same stress (goal: p99 <= 50 ms
# after). Builds BASE (the commit before the change) and this checkout,
# starts WRITERS containers of `stress --hdd 4` plus one `dd conv=fsync`
# loop, then runs each gestor (dry run, --interval 1, shipping to a local
# receiver, its spool under SPOOL_PARENT) ROUNDS times in turn while
# REQUESTS GET /metrics are timed, one every PACE_MS; and, as a control, the
# new one without shipping (no spool at all): the floor this machine gives.
# About 5 minutes, 10 the first time BASE is built (in its own target
# directory, kept).
#   bench/spool_fsync.sh
# Env: BASE (b72b4ca), WRITERS (6), ROUNDS (3), REQUESTS (600), PACE_MS (25),
# SPOOL_PARENT (/var/tmp: the disk under test; Docker's is /var/lib/docker).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# The last commit whose spool wrote and fsynced under a mutex that the
# sender took on a runtime worker.
readonly BASE="${BASE:-b72b4ca}"
readonly WRITERS="${WRITERS:-6}"
readonly ROUNDS="${ROUNDS:-3}"
readonly REQUESTS="${REQUESTS:-600}"
readonly PACE_MS="${PACE_MS:-25}"
readonly SPOOL_PARENT="${SPOOL_PARENT:-/var/tmp}"
SCOPE="spoolbench-$$"
readonly SCOPE
WORK="$(mktemp -d -p "${SPOOL_PARENT}" spool-fsync-bench.XXXXXX)"
readonly WORK

cleanup() {
  remove_containers "${SCOPE}"
  rm -rf "${WORK}"
}

# build_before: the BASE commit's release binary, as ${WORK}/gestor-before.
build_before() {
  local src="${WORK}/src-before"
  mkdir -p "${src}"
  git -C "${BENCH_ROOT}" archive "${BASE}" | tar -x -C "${src}"
  (cd "${src}" && CARGO_TARGET_DIR="${BENCH_ROOT}/target/bench-base" cargo build --release -q)
  cp "${BENCH_ROOT}/target/bench-base/release/gestor" "${WORK}/gestor-before"
}

# start_writers: disk stress at full speed (no CPU cap), managed disk
# containers of the scope, so each cycle measures them and writes records.
start_writers() {
  local i
  for ((i = 0; i < WRITERS; i++)); do
    "${DOCKER}" run -d --label "gestor.scope=${SCOPE}" --label gestor.managed=true \
      --label gestor.type=disk --name "disk-spoolbench-${SCOPE}-${i}" \
      "${STRESS_IMAGE}" stress --hdd 4 --hdd-bytes 1G >/dev/null
  done
  "${DOCKER}" run -d --label "gestor.scope=${SCOPE}" --label gestor.managed=true \
    --label gestor.type=disk --name "disk-spoolbench-${SCOPE}-dd" "${STRESS_IMAGE}" \
    sh -c 'while :; do dd if=/dev/zero of=/tmp/f bs=1M count=512 conv=fsync 2>/dev/null; done' \
    >/dev/null
}

dirty_mib() {
  awk '/^Dirty:/ {print int($2 / 1024)}' /proc/meminfo
}

# wait_for_writeback: until the writers keep >= 64 MiB dirty (60 s at most).
wait_for_writeback() {
  local i
  for ((i = 0; i < 600; i++)); do
    (($(dirty_mib) >= 64)) && return 0
    sleep 0.1
  done
  err "the writers keep only $(dirty_mib) MiB dirty"
}

main() {
  trap cleanup EXIT
  echo "building ${BASE} (before) and this checkout (after)"
  build_before
  build_gestor
  cp "${GESTOR}" "${WORK}/gestor-after"
  echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
  echo "spool on: $(df -T "${SPOOL_PARENT}" | awk 'NR == 2 {print $1, $2}') (${SPOOL_PARENT});" \
    "Docker on: $(df -T /var/lib/docker | awk 'NR == 2 {print $1, $2}')"
  echo "stress: ${WRITERS} x stress --hdd 4 --hdd-bytes 1G + dd bs=1M count=512 conv=fsync loop"
  start_writers
  wait_for_writeback
  echo "writeback: $(dirty_mib) MiB dirty"
  local round kind out spool binary
  for ((round = 1; round <= ROUNDS; round++)); do
    for kind in before after control; do
      out="${WORK}/${kind}-${round}.ms"
      spool="${WORK}/spool-${kind}-${round}"
      binary="${WORK}/gestor-${kind}"
      if [[ "${kind}" == control ]]; then
        spool=-
        binary="${WORK}/gestor-after"
      fi
      printf '%s round %s: ' "${kind}" "${round}"
      python3 "${BENCH_ROOT}/bench/spool_fsync.py" run "${binary}" "${spool}" "${out}" \
        "${REQUESTS}" "${PACE_MS}" --interval 1 --dry-run --only-label "gestor.scope=${SCOPE}"
      cat "${out}" >>"${WORK}/${kind}.ms"
    done
  done
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 "${BENCH_ROOT}/bench/spool_fsync.py" summary "${WORK}/before.ms" "${WORK}/after.ms" \
    "${WORK}/control.ms"
}

main "$@"
