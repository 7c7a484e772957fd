#!/usr/bin/env bash
#
# What must not create containers: --dry-run (even with no engine), a docker
# that cannot be reached or is missing, an absent image, bad options; and a
# container that is created but cannot start is removed, not left behind.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

# Runs the generator; sets OUT (stdout+stderr) and STATUS.
run_gen() {
  STATUS=0
  OUT="$(gen "$@" 2>&1)" || STATUS=$?
}

test_dry_run() {
  local lines
  run_gen -n 10 --dry-run
  assert_eq 0 "${STATUS}" "--dry-run exit status"
  lines="$(grep -c "^${DOCKER} run --detach --name " <<<"${OUT}" || true)"
  assert_eq 10 "${lines}" "docker run commands printed by --dry-run"
  assert_contains "${OUT}" "--label gestor.managed=true" "dry-run output"
  assert_contains "${OUT}" "--label gestor.scope=${SCOPE}" "dry-run output"
  assert_contains "${OUT}" "--cpus 0.25 --memory 128m" "dry-run output (default caps)"
  [[ "${OUT}" =~ stress\ --(cpu\ 1|vm\ 1\ --vm-bytes\ 64M\ --vm-keep|io\ 1|hdd\ 1\ --hdd-bytes\ 64M) ]] \
    || fail "no stress command in dry-run output: ${OUT}"
  assert_eq 0 "$(scoped_count)" "containers after --dry-run"
  # No engine needed to print commands.
  DOCKER_HOST=unix:///nonexistent/docker.sock run_gen -n 3 --dry-run
  assert_eq 0 "${STATUS}" "--dry-run exit status with no engine"
  [[ ! -e "${WORK}/gen.log" ]] || fail "--dry-run wrote the log: $(cat "${WORK}/gen.log")"
  ok "--dry-run prints 10 docker commands and creates nothing"
}

test_unreachable_docker() {
  local t0 t1
  t0="${SECONDS}"
  DOCKER_HOST=unix:///nonexistent/docker.sock run_gen -n 2
  t1="${SECONDS}"
  assert_eq 3 "${STATUS}" "exit status with an unreachable engine"
  assert_contains "${OUT}" "cannot reach the Docker engine (unix:///nonexistent/docker.sock)" \
    "message with an unreachable engine"
  ((t1 - t0 <= 15)) || fail "unreachable engine took $((t1 - t0)) s to report"
  assert_contains "$(cat "${WORK}/gen.log")" "error: cannot reach the Docker engine" "log"
  # A TCP engine address that refuses connections (loopback only).
  DOCKER_HOST=tcp://127.0.0.1:9 run_gen -n 2
  assert_eq 3 "${STATUS}" "exit status with a refused TCP engine"
  assert_eq 0 "$(scoped_count)" "containers after unreachable engine"
  ok "unreachable docker (unix socket, refused TCP): exit 3, clear message, logged"

  GESTOR_DOCKER=/nonexistent/bin/docker run_gen -n 2
  assert_eq 3 "${STATUS}" "exit status with no docker client"
  assert_contains "${OUT}" "docker client not found (/nonexistent/bin/docker)" "message"
  assert_contains "${OUT}" "apt-get install docker.io" "message"
  ok "missing docker client: exit 3, says how to install it"
}

test_absent_image() {
  local image="gestor/no-such-image:${SCOPE}"
  run_gen -n 2 --image "${image}"
  assert_eq 4 "${STATUS}" "exit status with an absent image"
  assert_contains "${OUT}" "image ${image} is not present" "message"
  assert_contains "${OUT}" "docker pull ${image}" "message"
  assert_contains "${OUT}" "scripts/build-images.sh" "message"
  assert_eq 0 "$(scoped_count)" "containers after absent image"
  ok "absent image: exit 4, says 'docker pull' or scripts/build-images.sh"
}

# An image without `stress`: docker creates each container (name and labels
# set), then cannot start it. The generator must remove every one.
test_start_failure_cleans_up() {
  local image=debian:bookworm-slim
  if ! "${DOCKER}" image inspect "${image}" >/dev/null 2>&1; then
    fail "${image} is needed for this test (scripts/build-images.sh makes it)"
  fi
  run_gen -n 3 --image "${image}"
  assert_eq 1 "${STATUS}" "exit status when containers cannot start"
  assert_contains "${OUT}" "created=0 failed=3 requested=3" "summary"
  assert_contains "${OUT}" "executable file not found" "docker's reason"
  assert_eq 0 "$(scoped_count)" "containers left after failed starts (any state)"
  assert_contains "$(tail -n 1 "${WORK}/gen.log")" "created=0 failed=3" "log"
  ok "containers created but not started are removed: nothing left behind"
}

# SIGTERM in the middle of a run: no new docker run starts, the ones in flight
# finish; every container left is running and reported; exit 143.
test_interrupted_run() {
  local pid status=0 printed states
  (exec "${GEN}" "${GEN_BASE[@]}" -n 8 --jobs 2 "${SMALL[@]}") >"${WORK}/int.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    (($(scoped_count) > 0)) && break
    sleep 0.1
  done
  kill -TERM "${pid}"
  wait "${pid}" || status=$?
  assert_eq 143 "${status}" "exit status of a run ended by SIGTERM"
  printed="$(grep -c '^created ' "${WORK}/int.out" || true)"
  ((printed < 8)) || fail "SIGTERM did not stop the run: ${printed} containers created"
  assert_eq "${printed}" "$(scoped_count)" "containers left vs containers reported"
  states="$("${DOCKER}" ps -a --filter "label=gestor.scope=${SCOPE}" --format '{{.State}}' \
    | sort -u | xargs)"
  [[ "${printed}" -eq 0 || "${states}" == running ]] \
    || fail "containers left in state(s) '${states}' after SIGTERM"
  assert_contains "$(tail -n 1 "${WORK}/gen.log")" "created=${printed} failed=0 requested=8" "log"
  assert_contains "$(tail -n 1 "${WORK}/gen.log")" "aborted=signal" "log"
  remove_scoped
  ok "SIGTERM mid-run: exit 143, ${printed} of 8 made, all running, logged as aborted"
}

# --syslog hands the summary to `logger -t gestor-generator[PID]` (a
# recording stand-in for logger first in PATH: this host has no syslog).
test_syslog() {
  local bin="${WORK}/bin"
  mkdir -p "${bin}"
  printf '#!/bin/sh\nprintf "%%s|" "$@" >>"%s"\n' "${WORK}/logger.args" >"${bin}/logger"
  chmod +x "${bin}/logger"
  PATH="${bin}:${PATH}" run_gen -n 0 --syslog --log-file ''
  assert_eq 0 "${STATUS}" "exit status of a -n 0 run with --syslog (${OUT})"
  [[ -s "${WORK}/logger.args" ]] || fail "logger was not called"
  [[ "$(cat "${WORK}/logger.args")" =~ ^-t\|gestor-generator\[[0-9]+\]\|--\|created=0\ failed=0\ requested=0\ duration= ]] \
    || fail "logger called with: $(cat "${WORK}/logger.args")"
  ok "--syslog: summary sent through logger -t gestor-generator[pid]"
}

test_usage_errors() {
  local -a bad
  local args
  for args in "-n x" "-n -1" "-n 1001" "--label noequals" "--label =v" \
    "--label gestor.type=cpu" "--label gestor.managed=false" "--cpus lots" \
    "--memory 1q" "--vm-bytes 0" "--jobs 0" "--bogus" "-n"; do
    read -r -a bad <<<"${args}"
    run_gen "${bad[@]}"
    assert_eq 2 "${STATUS}" "exit status for '${args}'"
  done
  assert_eq 0 "$(scoped_count)" "containers after usage errors"
  run_gen --help
  assert_eq 0 "${STATUS}" "--help exit status"
  assert_contains "${OUT}" "Usage: create_containers.sh" "--help"
  ok "bad options: exit 2 with a message; --help works"
}

main() {
  t_init failures
  test_dry_run
  test_unreachable_docker
  test_absent_image
  test_start_failure_cleans_up
  test_interrupted_run
  test_syslog
  test_usage_errors
}

main "$@"
