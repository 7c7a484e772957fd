#!/usr/bin/env bash
# Makes logger/.venv (Debian's python3 when present) with the pinned runtime
# and test requirements; re-installs only when a requirements file changed.
# Used by tests/run.sh and bench/logger.sh. Prints nothing when all is there.
set -euo pipefail

LOGGER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly LOGGER_DIR
readonly VENV="${LOGGER_DIR}/.venv"
readonly STAMP="${VENV}/.requirements.sha256"

readonly PROG="logger/scripts/ensure-venv.sh"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

base_python() {
  if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo /usr/bin/python3
  elif command -v python3 >/dev/null 2>&1; then
    command -v python3
  else
    err "no python3 (install Debian's python3 and python3-venv)"
    return 1
  fi
}

main() {
  local want python
  want="$(cat "${LOGGER_DIR}/requirements.txt" "${LOGGER_DIR}/requirements-dev.txt" | sha256sum)"
  if [[ -e "${VENV}" ]] && ! "${VENV}/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "${VENV}"
  fi
  if [[ ! -x "${VENV}/bin/python" ]]; then
    python="$(base_python)"
    "${python}" -m venv "${VENV}"
  fi
  if [[ "$(cat "${STAMP}" 2>/dev/null || true)" != "${want}" ]]; then
    echo "logger: installing requirements into ${VENV}"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "${VENV}/bin/pip" install -q \
      -r "${LOGGER_DIR}/requirements-dev.txt"
    printf '%s\n' "${want}" >"${STAMP}"
  fi
}

main "$@"
