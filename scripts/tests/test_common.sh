#!/usr/bin/env bash
#
# The shared shell helpers (scripts/lib/common.sh): err's prefix, wait_for's
# deadline and what it says on time-out, apt_install_missing with nothing
# missing (no apt-get run) and, as an unprivileged user, with a package
# missing (refused with its name). Each case runs in its own bash, as a
# script would; needs only bash, dpkg and (for the last case) setpriv.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SCRIPTS_DIR
readonly COMMON="${SCRIPTS_DIR}/lib/common.sh"
FAILED=0

# run_case SNIPPET: runs SNIPPET in a fresh `bash -c` named "caller.sh" that
# sourced common.sh; sets OUT (stdout), ERR (stderr) and RC.
run_case() {
  local out_file err_file
  out_file="$(mktemp)"
  err_file="$(mktemp)"
  RC=0
  bash -c "set -euo pipefail; source '${COMMON}'; $1" caller.sh \
    >"${out_file}" 2>"${err_file}" || RC=$?
  OUT="$(<"${out_file}")"
  ERR="$(<"${err_file}")"
  rm -f -- "${out_file}" "${err_file}"
}

expect() {
  local what="$1" want="$2" got="$3"
  if [[ "${got}" == "${want}" ]]; then
    printf 'ok   common.sh: %s\n' "${what}"
  else
    printf 'FAIL common.sh: %s: expected %q, got %q\n' "${what}" "${want}" "${got}" >&2
    FAILED=1
  fi
}

main() {
  run_case 'err "no such file"'
  expect "err: the script's name, on stderr" "caller.sh: no such file|" "${ERR}|${OUT}"
  run_case 'PROG=test-stack; err "bad value"'
  expect "err: PROG when the script sets it" "test-stack: bad value" "${ERR}"

  # Succeeds at its third call: wait_for returns 0 after exactly 3 calls.
  # shellcheck disable=SC2016 # expanded by the case's own bash
  run_case 'n=0; third() { n=$((n + 1)); ((n >= 3)); }
    WAIT_FOR_INTERVAL=0.1 wait_for 10 "three calls" third; echo "calls=${n}"'
  expect "wait_for: returns once the command succeeds" "0 calls=3 " "${RC} ${OUT} ${ERR}"

  # Never succeeds: 1 after the deadline, saying what it waited for and
  # showing the command's own output once.
  # shellcheck disable=SC2016 # expanded by the case's own bash
  run_case 'never() { echo "still down"; return 1; }
    start=${SECONDS}; rc=0; WAIT_FOR_INTERVAL=0.2 wait_for 1 "the engine" never || rc=$?
    echo "rc=${rc} waited=$((SECONDS - start))"'
  expect "wait_for: gives up at the deadline" "rc=1" "${OUT%% *}"
  case "${OUT#* }" in
    waited=1 | waited=2) expect "wait_for: within its 1 s deadline" ok ok ;;
    *) expect "wait_for: within its 1 s deadline" "waited=1 or 2" "${OUT#* }" ;;
  esac
  expect "wait_for: says why on stderr" \
    $'caller.sh: gave up after 1 s waiting for the engine\nstill down' "${ERR}"

  # bash is installed on every host that runs this: nothing to do, no apt-get.
  run_case 'apt-get() { echo "apt-get called"; }; apt_install_missing bash'
  expect "apt_install_missing: nothing missing, nothing run" "0||" "${RC}|${OUT}|${ERR}"

  if command -v setpriv >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]]; then
    local out rc=0
    out="$(setpriv --reuid=65534 --regid=65534 --clear-groups bash -c \
      "source '${COMMON}'; apt_install_missing bash gestor-no-such-package" caller.sh 2>&1)" \
      || rc=$?
    expect "apt_install_missing: not root, one missing: refused, named" \
      "1 caller.sh: missing Debian packages: gestor-no-such-package (install them, or run as root)" \
      "${rc} ${out}"
  else
    printf 'skip common.sh: apt_install_missing as an unprivileged user (needs root and setpriv)\n'
  fi
  ((FAILED == 0))
}

main "$@"
