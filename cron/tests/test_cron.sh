#!/usr/bin/env bash
#
# The real thing: install.sh writes a file in /etc/cron.d, Debian's cron
# daemon runs it, and the generator fires twice in one minute (at :00 and,
# through `sleep 30 &&`, at :30); uninstall.sh removes only that file, cron
# stops running it, and every other cron file is byte-for-byte unchanged.
# Starts `cron -f` if no cron runs (and stops it after). Needs root.
# Takes 35-130 s, most of it waiting for the clock; every wait is bounded.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# apt_install_missing
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "$0")/../../scripts/lib/common.sh"

readonly CRON_D=/etc/cron.d
readonly PER_RUN=1

CRON_FILE=""
DUMMY=""
CRON_PID=""

on_cleanup() {
  local pid
  if [[ -n "${CRON_FILE}" && -e "${CRON_FILE}" ]]; then
    GESTOR_CRON_FILE="${CRON_FILE}" "${CRON_DIR}/uninstall.sh" >/dev/null 2>&1 || true
  fi
  [[ -z "${DUMMY}" ]] || rm -f -- "${DUMMY}"
  # A job cron already started (e.g. in its `sleep 30`) would create a
  # container after this cleanup: end the processes carrying our scope.
  for pid in $(pgrep -f -- "gestor.scope=${SCOPE}" || true); do
    [[ "${pid}" == "$$" ]] || kill "${pid}" 2>/dev/null || true
  done
  if [[ -n "${CRON_PID}" ]]; then
    kill "${CRON_PID}" 2>/dev/null || true
    wait "${CRON_PID}" 2>/dev/null || true
  fi
}

ensure_cron() {
  if [[ "$(id -u)" -ne 0 ]]; then
    fail "needs root (writes ${CRON_D} and may start cron)"
  fi
  if ! command -v cron >/dev/null 2>&1; then
    apt_install_missing cron || fail "cannot install cron"
  fi
  if pgrep -x cron >/dev/null; then
    echo "     using the cron daemon already running (pid $(pgrep -x cron | head -n 1))"
    return 0
  fi
  cron -f >"${WORK}/cron.out" 2>&1 &
  CRON_PID=$!
  sleep 1
  kill -0 "${CRON_PID}" 2>/dev/null \
    || fail "cron -f did not stay up: $(cat "${WORK}/cron.out")"
  echo "     started cron -f (pid ${CRON_PID}); it is stopped at the end"
}

other_cron_files() {
  find "${CRON_D}" /etc/crontab /var/spool/cron/crontabs -maxdepth 1 -type f \
    ! -path "${CRON_FILE}" -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
}

# Seconds since the epoch of a summary line's ISO timestamp.
line_epoch() {
  date -u -d "${1%% *}" +%s
}

main() {
  t_init cron_daemon
  local hex before sec deadline runs first second e1 e2 s1 out
  ensure_cron
  hex="${SCOPE##*-}"
  CRON_FILE="${CRON_D}/gestor-generator-test-${hex}"
  DUMMY="${CRON_D}/gestor-test-dummy-${hex}"
  printf '# dummy file of the gestor cron test; it must survive uninstall\n' >"${DUMMY}"
  before="$(other_cron_files)"

  # cron reads changed files at the top of the minute: do not install in the
  # last seconds of one.
  sec=$((10#$(date +%S)))
  if ((sec >= 50)); then
    sleep $((61 - sec))
  fi
  out="$(GESTOR_CRON_FILE="${CRON_FILE}" "${CRON_DIR}/install.sh" -n "${PER_RUN}" \
    --image "${TEST_IMAGE}" --label "gestor.scope=${SCOPE}" "${SMALL[@]}" \
    --log-file "${WORK}/gen.log" --lock-file "${WORK}/gen.lock" 2>&1)" \
    || fail "install.sh failed: ${out}"
  grep -q '^\* \* \* \* \* root sleep 30 && ' "${CRON_FILE}" \
    || fail "no delayed entry in ${CRON_FILE}"
  sec=$((10#$(date +%S)))
  deadline=$((SECONDS + (60 - sec) + 30 + 40))
  echo "     installed ${CRON_FILE} at :$(printf '%02d' "${sec}");" \
    "waiting up to $((deadline - SECONDS)) s for two runs"

  runs=0
  while ((SECONDS < deadline)); do
    runs="$(grep -c "created=${PER_RUN} failed=0" "${WORK}/gen.log" 2>/dev/null || true)"
    ((runs >= 2)) && break
    if grep -q 'error:' "${WORK}/gen.log" 2>/dev/null; then
      fail "the cron job logged an error: $(grep 'error:' "${WORK}/gen.log")"
    fi
    sleep 1
  done
  ((runs >= 2)) || fail "cron ran the job ${runs} time(s) before the deadline;" \
    "log: $(cat "${WORK}/gen.log" 2>/dev/null)"
  first="$(sed -n 1p "${WORK}/gen.log")"
  second="$(sed -n 2p "${WORK}/gen.log")"
  e1="$(line_epoch "${first}")"
  e2="$(line_epoch "${second}")"
  s1=$((e1 % 60))
  ((s1 <= 5)) || fail "first run did not start at the top of a minute: ${first}"
  ((e2 - e1 >= 28 && e2 - e1 <= 33)) \
    || fail "runs were $((e2 - e1)) s apart, not 30: ${first} / ${second}"
  assert_eq "$((2 * PER_RUN))" "$(scoped_count)" "containers made by cron"
  assert_eq "$((2 * PER_RUN))" "$("${DOCKER}" ps -q --filter "label=gestor.scope=${SCOPE}" \
    --filter status=running | grep -c . || true)" "running containers made by cron"
  ok "real cron fired twice in one minute, $((e2 - e1)) s apart (at :$(printf '%02d' "${s1}")" \
    "and :$(printf '%02d' $((e2 % 60))))"

  out="$(GESTOR_CRON_FILE="${CRON_FILE}" "${CRON_DIR}/uninstall.sh" 2>&1)" \
    || fail "uninstall.sh failed: ${out}"
  [[ ! -e "${CRON_FILE}" ]] || fail "uninstall left ${CRON_FILE}"
  assert_eq "${before}" "$(other_cron_files)" "checksums of the other cron files"
  [[ -f "${DUMMY}" ]] || fail "the dummy cron file is gone"
  ok "uninstall removed only its file; $(grep -c . <<<"${before}") other cron files unchanged"

  # Past the next top of the minute, cron must not have run the job again.
  sec=$((10#$(date +%S)))
  sleep $((60 - sec + 4))
  runs="$(grep -c 'created=' "${WORK}/gen.log" || true)"
  assert_eq 2 "${runs}" "runs logged after uninstall and a minute boundary"
  ok "no run after uninstall"
}

main "$@"
