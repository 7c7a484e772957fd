#!/usr/bin/env bash
#
# Installs gestor's generator (cron/create_containers.sh) as a cron job: writes
# /etc/cron.d/gestor-generator with one entry per run in a minute (two entries
# for the default 30 s, the second delayed with `sleep 30`), an explicit PATH
# and the script's absolute path. No user crontab is touched. With --systemd,
# installs a service + timer pair in /etc/systemd/system instead.
#
# Every argument that is not an install.sh option is passed on to
# create_containers.sh (e.g. -n 10 --image IMG --label KEY=VALUE) and checked
# with its --dry-run first. Re-running install.sh replaces the installed job.
set -euo pipefail

readonly PROG="install.sh"
SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
readonly SCRIPT_DIR
readonly GENERATOR="${SCRIPT_DIR}/create_containers.sh"
readonly CRON_TEMPLATE="${SCRIPT_DIR}/gestor-generator.cron.in"
readonly UNIT_TEMPLATES="${SCRIPT_DIR}/systemd"
readonly MARKER="gestor-generator: installed by gestor's cron/install.sh"
readonly UNIT_NAME="gestor-generator"

CRON_FILE="${GESTOR_CRON_FILE:-/etc/cron.d/gestor-generator}"
UNIT_DIR="${GESTOR_UNIT_DIR:-/etc/systemd/system}"
EVERY=30
RUN_USER=root
MODE=cron
PRINT_ONLY=false
FORCE=false
GEN_ARGS=()

# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../scripts/lib/common.sh"

usage() {
  cat <<EOF
Usage: ${PROG} [INSTALL OPTIONS] [GENERATOR OPTIONS]

Installs cron/create_containers.sh as a cron job (default) or a systemd timer.

Install options:
  --every SECS      seconds between runs (default 30). cron: 10, 12, 15, 20, 30,
                    60, or a multiple of 60 that divides an hour; systemd: any.
  --user USER       user the job runs as (default root; needs access to docker)
  --cron-file PATH  cron file to write (default /etc/cron.d/gestor-generator)
                    [GESTOR_CRON_FILE]
  --systemd         install ${UNIT_NAME}.service and .timer instead of cron
  --unit-dir DIR    where the units go (default /etc/systemd/system) [GESTOR_UNIT_DIR]
  --print           print what would be written; change nothing
  --force           replace a file at the destination that install.sh did not write
  -h, --help        show this help

Every other argument goes to create_containers.sh, e.g.
  sudo ${PROG} -n 10 --image containerstack/alpine-stress --label team=lab
(see create_containers.sh --help). Remove the job with cron/uninstall.sh.
EOF
}

usage_error() {
  err "$*"
  err "try '${PROG} --help'"
  exit 2
}

need_value() {
  if [[ $# -lt 2 ]]; then
    usage_error "option $1 needs a value"
  fi
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --every) need_value "$@"; EVERY="$2"; shift 2 ;;
      --user) need_value "$@"; RUN_USER="$2"; shift 2 ;;
      --cron-file) need_value "$@"; CRON_FILE="$2"; shift 2 ;;
      --unit-dir) need_value "$@"; UNIT_DIR="$2"; shift 2 ;;
      --systemd) MODE=systemd; shift ;;
      --print) PRINT_ONLY=true; shift ;;
      --force) FORCE=true; shift ;;
      -h | --help) usage; exit 0 ;;
      --) shift; GEN_ARGS+=("$@"); break ;;
      *) GEN_ARGS+=("$1"); shift ;;
    esac
  done
}

validate() {
  local arg name
  if [[ ! "${EVERY}" =~ ^[1-9][0-9]{0,4}$ ]]; then
    usage_error "bad --every '${EVERY}': expected seconds"
  fi
  if [[ "${MODE}" == "cron" ]] && ! cron_schedule_ok "${EVERY}"; then
    usage_error "cron cannot run every ${EVERY} s: use 10, 12, 15, 20, 30, 60 or a" \
      "multiple of 60 that divides 3600 (or --systemd)"
  fi
  if ! id -u "${RUN_USER}" >/dev/null 2>&1; then
    usage_error "no such user '${RUN_USER}'"
  fi
  for arg in "${GEN_ARGS[@]}"; do
    if [[ "${arg}" == *%* || "${arg}" == *$'\n'* ]]; then
      usage_error "generator argument '${arg}' has a % or a newline, which cron" \
        "would rewrite: not supported"
    fi
  done
  name="$(basename "${CRON_FILE}")"
  if [[ "${MODE}" == "cron" && ! "${name}" =~ ^[A-Za-z0-9_-]+$ ]]; then
    usage_error "cron ignores files in cron.d named '${name}': use letters, digits, - and _"
  fi
  if [[ "${CRON_FILE}" != /* || "${UNIT_DIR}" != /* ]]; then
    usage_error "--cron-file and --unit-dir must be absolute paths"
  fi
  if [[ ! -x "${GENERATOR}" ]]; then
    err "${GENERATOR} is missing or not executable"
    exit 1
  fi
  if ! "${GENERATOR}" "${GEN_ARGS[@]}" --dry-run --quiet >/dev/null; then
    err "the generator options above were refused; nothing installed"
    exit 2
  fi
}

# True when cron can start a job every $1 seconds.
cron_schedule_ok() {
  local secs="$1"
  if ((secs < 60)); then
    ((secs >= 10 && 60 % secs == 0))
  else
    ((secs % 60 == 0 && 60 % (secs / 60) == 0))
  fi
}

# Quotes one word for /bin/sh; plain words stay as they are.
sh_quote() {
  local s="$1" q="'\\''"
  if [[ "${s}" =~ ^[A-Za-z0-9_./=:,@+-]+$ ]]; then
    printf '%s' "${s}"
  else
    printf "'%s'" "${s//\'/${q}}"
  fi
}

# Quotes one word for a systemd ExecStart= line (systemd.service(5)): inside
# double quotes, \ and " are escaped; % and $ are doubled everywhere.
unit_quote() {
  local s="$1"
  if [[ "${s}" =~ ^[A-Za-z0-9_./=:,@+-]+$ ]]; then
    printf '%s' "${s}"
    return 0
  fi
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//%/%%}"
  s="${s//\$/\$\$}"
  printf '"%s"' "${s}"
}

command_line() {
  local quote="$1" word line=""
  shift
  for word in "$@"; do
    line+="${line:+ }$("${quote}" "${word}")"
  done
  printf '%s' "${line}"
}

# Replaces @KEY@ placeholders (KEY=VALUE arguments) in a template file.
render() {
  local template="$1" text pair key value
  shift
  text="$(<"${template}")"
  for pair in "$@"; do
    key="${pair%%=*}"
    value="${pair#*=}"
    text="${text//"@${key}@"/"${value}"}"
  done
  printf '%s\n' "${text}"
}

cron_entries() {
  local cmd="$1" secs="$2" delay
  if ((secs < 60)); then
    for ((delay = 0; delay < 60; delay += secs)); do
      if ((delay == 0)); then
        printf '* * * * * %s %s\n' "${RUN_USER}" "${cmd}"
      else
        printf '* * * * * %s sleep %d && %s\n' "${RUN_USER}" "${delay}" "${cmd}"
      fi
    done
  elif ((secs == 60)); then
    printf '* * * * * %s %s\n' "${RUN_USER}" "${cmd}"
  else
    printf '*/%d * * * * %s %s\n' $((secs / 60)) "${RUN_USER}" "${cmd}"
  fi
}

# Writes $2 (text) to $1 atomically with mode 0644, unless a file there was not
# written by install.sh (then refuses without --force).
install_file() {
  local dest="$1" text="$2" dir tmp
  dir="$(dirname "${dest}")"
  if [[ -e "${dest}" && "${FORCE}" != "true" ]] && ! grep -qF "${MARKER}" "${dest}"; then
    err "${dest} exists and was not written by ${PROG}; not replacing it (use --force)"
    exit 1
  fi
  if [[ ! -d "${dir}" ]]; then
    err "${dir} does not exist: is cron (or systemd) installed?"
    exit 1
  fi
  # A dot in the name: cron ignores the file until it is renamed into place.
  tmp="$(mktemp "${dir}/.${UNIT_NAME}.XXXXXX")"
  printf '%s\n' "${text}" >"${tmp}"
  chmod 0644 "${tmp}"
  mv -f "${tmp}" "${dest}"
  echo "${PROG}: wrote ${dest}"
}

install_cron() {
  local cmd text
  cmd="$(command_line sh_quote "${GENERATOR}" --quiet "${GEN_ARGS[@]}")"
  text="$(render "${CRON_TEMPLATE}" "EVERY=${EVERY}" "USER=${RUN_USER}" \
    "ENTRIES=$(cron_entries "${cmd}" "${EVERY}")")"
  if [[ "${PRINT_ONLY}" == "true" ]]; then
    printf '# %s\n%s\n' "${CRON_FILE}" "${text}"
    return 0
  fi
  install_file "${CRON_FILE}" "${text}"
  if ! pgrep -x cron >/dev/null 2>&1 && ! pgrep -x crond >/dev/null 2>&1; then
    err "warning: no cron daemon is running; start it (e.g. systemctl enable --now cron)" \
      "or install with --systemd"
  fi
}

install_systemd() {
  local cmd service timer
  cmd="$(command_line unit_quote "${GENERATOR}" "${GEN_ARGS[@]}")"
  service="$(render "${UNIT_TEMPLATES}/${UNIT_NAME}.service.in" "USER=${RUN_USER}" \
    "COMMAND=${cmd}" "README=${SCRIPT_DIR}/README.md")"
  timer="$(render "${UNIT_TEMPLATES}/${UNIT_NAME}.timer.in" "EVERY=${EVERY}")"
  if [[ "${PRINT_ONLY}" == "true" ]]; then
    printf '# %s\n%s\n# %s\n%s\n' "${UNIT_DIR}/${UNIT_NAME}.service" "${service}" \
      "${UNIT_DIR}/${UNIT_NAME}.timer" "${timer}"
    return 0
  fi
  install_file "${UNIT_DIR}/${UNIT_NAME}.service" "${service}"
  install_file "${UNIT_DIR}/${UNIT_NAME}.timer" "${timer}"
  if [[ -d /run/systemd/system && "${UNIT_DIR}" == /etc/systemd/system ]]; then
    systemctl daemon-reload
    systemctl enable --now "${UNIT_NAME}.timer"
    echo "${PROG}: ${UNIT_NAME}.timer enabled and started"
  else
    echo "${PROG}: systemd is not managing this host (or --unit-dir is not" \
      "/etc/systemd/system); to start the timer where systemd runs:" \
      "systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}.timer"
  fi
}

main() {
  parse_args "$@"
  validate
  if [[ "${PRINT_ONLY}" != "true" ]] \
    && ! "${GENERATOR}" "${GEN_ARGS[@]}" --check --quiet; then
    err "warning: the generator's pre-flight check failed (above); the job is" \
      "installed anyway and will log the same error until it is fixed"
  fi
  if [[ "${MODE}" == "systemd" ]]; then
    install_systemd
  else
    install_cron
  fi
}

main "$@"
