#!/usr/bin/env bash
#
# Removes what cron/install.sh installed: only /etc/cron.d/gestor-generator
# (or, with --systemd, only gestor-generator.service and .timer). A file that
# install.sh did not write is left alone. Containers already created stay; the
# gestor daemon (or `docker rm -f`) deals with them. Idempotent.
set -euo pipefail

readonly PROG="uninstall.sh"
readonly MARKER="gestor-generator: installed by gestor's cron/install.sh"
readonly UNIT_NAME="gestor-generator"

CRON_FILE="${GESTOR_CRON_FILE:-/etc/cron.d/gestor-generator}"
UNIT_DIR="${GESTOR_UNIT_DIR:-/etc/systemd/system}"
MODE=cron

# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../scripts/lib/common.sh"

usage() {
  cat <<EOF
Usage: ${PROG} [--cron-file PATH] [--systemd [--unit-dir DIR]]

Removes the generator's cron file (default /etc/cron.d/gestor-generator)
[GESTOR_CRON_FILE], or with --systemd stops and removes ${UNIT_NAME}.timer
and ${UNIT_NAME}.service from --unit-dir (default /etc/systemd/system)
[GESTOR_UNIT_DIR]. Nothing else is touched.
EOF
}

usage_error() {
  err "$*"
  err "try '${PROG} --help'"
  exit 2
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --cron-file)
        [[ $# -ge 2 ]] || usage_error "option $1 needs a value"
        CRON_FILE="$2"
        shift 2
        ;;
      --unit-dir)
        [[ $# -ge 2 ]] || usage_error "option $1 needs a value"
        UNIT_DIR="$2"
        shift 2
        ;;
      --systemd) MODE=systemd; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage_error "unknown argument '$1'" ;;
    esac
  done
}

# Removes file $1 if install.sh wrote it; returns 1 if it belongs to someone else.
remove_ours() {
  local file="$1"
  if [[ ! -e "${file}" ]]; then
    echo "${PROG}: ${file} is not installed; nothing to remove"
    return 0
  fi
  if ! grep -qF "${MARKER}" "${file}"; then
    err "${file} was not written by install.sh; leaving it alone"
    return 1
  fi
  rm -f -- "${file}"
  echo "${PROG}: removed ${file}"
}

uninstall_systemd() {
  local status=0
  if [[ -d /run/systemd/system && "${UNIT_DIR}" == /etc/systemd/system \
    && -e "${UNIT_DIR}/${UNIT_NAME}.timer" ]]; then
    systemctl disable --now "${UNIT_NAME}.timer" || status=1
  fi
  remove_ours "${UNIT_DIR}/${UNIT_NAME}.timer" || status=1
  remove_ours "${UNIT_DIR}/${UNIT_NAME}.service" || status=1
  if [[ -d /run/systemd/system && "${UNIT_DIR}" == /etc/systemd/system ]]; then
    systemctl daemon-reload || status=1
  fi
  return "${status}"
}

main() {
  parse_args "$@"
  if [[ "${MODE}" == "systemd" ]]; then
    uninstall_systemd
  else
    remove_ours "${CRON_FILE}"
  fi
}

main "$@"
