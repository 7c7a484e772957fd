#!/usr/bin/env bash
#
# Makes a Python virtualenv with pinned requirements, once:
#
#   scripts/ensure-venv.sh VENV REQUIREMENTS_FILE...
#
# VENV is made with Debian's python3 when present (else the python3 on PATH)
# and made again when its interpreter no longer runs; the requirements are
# installed again only when one of the files changed (a stamp in VENV holds
# their digest). Prints nothing when all is there. Used for the lint tools
# (.venv, scripts/requirements-lint.txt), the log service (logger/.venv) and
# the stack suite (tests/stack/.venv).
set -euo pipefail

readonly PROG="ensure-venv"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

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
  if (($# < 2)); then
    err "usage: ensure-venv.sh VENV REQUIREMENTS_FILE..."
    return 2
  fi
  local venv="$1" want python file
  shift
  local stamp="${venv}/.requirements.sha256"
  local -a pip_args=()
  for file in "$@"; do
    [[ -f "${file}" ]] || { err "no requirements file ${file}"; return 2; }
    pip_args+=(-r "${file}")
  done
  want="$(cat "$@" | sha256sum)"
  if [[ -e "${venv}" ]] && ! "${venv}/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "${venv}"
  fi
  if [[ ! -x "${venv}/bin/python" ]]; then
    python="$(base_python)"
    "${python}" -m venv "${venv}"
  fi
  if [[ "$(cat "${stamp}" 2>/dev/null || true)" != "${want}" ]]; then
    echo "${PROG}: installing $* into ${venv}"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "${venv}/bin/pip" install -q "${pip_args[@]}"
    printf '%s\n' "${want}" >"${stamp}"
  fi
}

main "$@"
