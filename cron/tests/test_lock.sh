#!/usr/bin/env bash
#
# Runs never overlap: while the lock is held, a run exits 75 at once with a
# clear message, creates nothing and logs "skipped"; of two runs started
# together, one creates its containers and the other is skipped; the lock
# does not outlive the run that held it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

readonly PER_RUN=4

on_cleanup() {
  if [[ -n "${HOLDER_PID:-}" ]]; then
    kill "${HOLDER_PID}" 2>/dev/null || true
    wait "${HOLDER_PID}" 2>/dev/null || true
  fi
}

test_held_lock() {
  local status=0 out t0 ms
  # Hold the generator's lock the way a running generator does: a process
  # with the file open and flock(2)ed; killing it frees the lock.
  (
    exec 9>>"${WORK}/gen.lock"
    flock 9
    exec sleep 60
  ) &
  HOLDER_PID=$!
  for _ in $(seq 1 50); do
    if ! flock -n "${WORK}/gen.lock" true; then
      break
    fi
    sleep 0.1
  done
  t0="$(date +%s%N)"
  out="$(gen -n "${PER_RUN}" "${SMALL[@]}" 2>&1)" || status=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  assert_eq 75 "${status}" "exit status while the lock is held"
  assert_contains "${out}" "another run holds ${WORK}/gen.lock; skipping this run" "message"
  ((ms < 3000)) || fail "a skipped run took ${ms} ms; it must not wait for the lock"
  assert_eq 0 "$(scoped_count)" "containers made while the lock was held"
  assert_contains "$(cat "${WORK}/gen.log")" "skipped: another run holds" "log"
  ok "lock held: exit 75 in ${ms} ms, message, 'skipped' logged, nothing created"
  kill "${HOLDER_PID}"
  wait "${HOLDER_PID}" 2>/dev/null || true
  HOLDER_PID=""
}

test_two_concurrent_runs() {
  local a b status_a=0 status_b=0 statuses
  (exec "${GEN}" "${GEN_BASE[@]}" -n "${PER_RUN}" --quiet "${SMALL[@]}") >"${WORK}/a.out" 2>&1 &
  a=$!
  (exec "${GEN}" "${GEN_BASE[@]}" -n "${PER_RUN}" --quiet "${SMALL[@]}") >"${WORK}/b.out" 2>&1 &
  b=$!
  wait "${a}" || status_a=$?
  wait "${b}" || status_b=$?
  statuses="$(printf '%s\n' "${status_a}" "${status_b}" | sort -n | tr '\n' ' ')"
  assert_eq "0 75 " "${statuses}" "exit statuses of two concurrent runs"
  assert_eq "${PER_RUN}" "$(scoped_count)" "containers made by two concurrent runs"
  assert_eq 1 "$(grep -c "created=${PER_RUN} failed=0" "${WORK}/gen.log")" \
    "runs that created containers"
  ok "two concurrent runs: one made ${PER_RUN} containers, the other exited 75"
  remove_scoped
}

test_lock_released() {
  local status=0
  gen -n 1 --quiet "${SMALL[@]}" || status=$?
  assert_eq 0 "${status}" "exit status of a run after the others ended"
  assert_eq 1 "$(scoped_count)" "containers after the lock was released"
  ok "the lock is free once a run ends"
}

main() {
  t_init lock
  HOLDER_PID=""
  test_held_lock
  test_two_concurrent_runs
  test_lock_released
}

main "$@"
