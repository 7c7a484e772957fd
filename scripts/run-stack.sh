#!/usr/bin/env bash
#
# Brings gestor's stack up on this Docker host: writes the stack's env file
# once (random secrets, mode 0600), builds the images we build (gestor/gestor,
# gestor/logger) when they are missing, then starts docker-compose.yml with
# `docker compose up -d` (Compose v2) or `docker-compose up -d` (1.x), waits
# for gestor to be healthy, sets Grafana's admin password from the env file
# and prints the URLs and that password. Refuses to publish Grafana and the
# live page beyond loopback (STACK_BIND) with Grafana's default password.
# Optionally installs the cron generator and loads the kernel module. See
# docs/stack.md.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly PROG="run-stack.sh"
readonly DOCKER="${DOCKER:-/usr/bin/docker}"
readonly GESTOR_IMAGE="${GESTOR_IMAGE:-gestor/gestor:latest}"
readonly LOGGER_IMAGE="${LOGGER_IMAGE:-gestor/logger:latest}"
# The monitoring services and their images (the same defaults as
# docker-compose.yml; *_IMAGE picks another, e.g. a local stand-in).
readonly MONITORING_SERVICES=(alertmanager prometheus grafana)
declare -Ar MONITORING_IMAGE=(
  [prometheus]="${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.2}"
  [alertmanager]="${ALERTMANAGER_IMAGE:-prom/alertmanager:v0.27.0}"
  [grafana]="${GRAFANA_IMAGE:-grafana/grafana:11.2.2}"
)
readonly SYSINFO=/proc/sysinfo_202200075
readonly STRESS_IMAGE_DEFAULT=containerstack/alpine-stress
# The stack's env file: KEY=value lines that docker compose substitutes into
# docker-compose.yml (run-stack.sh passes --env-file; `docker compose` run by
# hand in the repo reads ./.env by itself). Created once with mode 0600; a
# secret named below is generated when the file lacks it, and an existing
# value is never changed. To have another secret generated, add its name
# here and `${NAME:?...}` in the compose file.
readonly ENV_FILE="${STACK_ENV_FILE:-${REPO_ROOT}/.env}"
readonly GENERATED_SECRETS=(LOGGER_TOKEN GRAFANA_ADMIN_PASSWORD)

COMPOSE=()
REBUILD=false
INIT_ENV=false
WITH_CRON=false
WITH_MODULE=false
DOWN=false
STARTED=()
CRON_ARGS=()

# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
log() { printf '%s: %s\n' "${PROG}" "$*"; }

usage() {
  cat <<EOF
Usage: ${PROG} [OPTIONS] [-- CRON INSTALL ARGS]

Builds gestor/gestor and gestor/logger when missing, starts gestor, the log
service, Prometheus, Alertmanager and Grafana (docker-compose.yml) and prints
their URLs and Grafana's password.

Options:
  --rebuild       rebuild gestor's and the logger's images even when present
  --with-module   also build and load the kernel module (needs the headers of
                  the running kernel; skipped with a note when absent)
  --with-cron     also install the container generator (cron/install.sh); the
                  arguments after -- go to it, e.g. -- --image gestor/stress:latest
  --down          stop the stack (keeps its volumes; add -v by hand to drop them)
  --init-env      only write the env file (or add a missing secret to it) and exit
  -h, --help      show this help

The env file (${ENV_FILE}; STACK_ENV_FILE
moves it) holds the stack's secrets, random, generated on the first run and
kept (mode 0600, never overwritten): LOGGER_TOKEN, the bearer token gestor and
Alertmanager send and the log service requires, and GRAFANA_ADMIN_PASSWORD,
which every run sets as Grafana's admin password. Compose reads it; a
variable set in the environment wins over the file.

STACK_BIND (default 127.0.0.1) is where Grafana and the log service's live
page are published; gestor, Prometheus and Alertmanager stay on 127.0.0.1.
A STACK_BIND beyond loopback is refused while Grafana's password is empty or
"admin".

Environment: STACK_BIND, GESTOR_PORT (9797), LOGGER_PORT (8000),
PROMETHEUS_PORT (9090), ALERTMANAGER_PORT (9093), GRAFANA_PORT (3000),
GRAFANA_ADMIN_USER (admin), STACK_HOSTNAME (gestor), GESTOR_INTERVAL (10),
GESTOR_ONLY_LABEL, GESTOR_DRY_RUN (false), PROMETHEUS_IMAGE,
ALERTMANAGER_IMAGE, GRAFANA_IMAGE, STACK_ENV_FILE.
EOF
}

parse_args() {
  while (($# > 0)); do
    case "$1" in
      --rebuild) REBUILD=true ;;
      --with-module) WITH_MODULE=true ;;
      --with-cron) WITH_CRON=true ;;
      --down) DOWN=true ;;
      --init-env) INIT_ENV=true ;;
      -h | --help)
        usage
        exit 0
        ;;
      --)
        shift
        CRON_ARGS=("$@")
        return 0
        ;;
      *)
        err "unknown option: $1 (see --help)"
        exit 2
        ;;
    esac
    shift
  done
}

pick_compose() {
  if "${DOCKER}" compose version >/dev/null 2>&1; then
    COMPOSE=("${DOCKER}" compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  elif [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    # A fresh Debian/Ubuntu host: Debian's docker-compose (1.29) reads our file.
    apt_install_missing docker-compose
    COMPOSE=(docker-compose)
  else
    err "neither 'docker compose' (v2) nor 'docker-compose' is installed:"
    err "  sudo apt-get install docker-compose   (or the docker-compose-plugin package)"
    exit 1
  fi
}

compose() {
  "${COMPOSE[@]}" --env-file "${ENV_FILE}" -f "${REPO_ROOT}/docker-compose.yml" "$@"
}

random_secret() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# The value compose uses for a variable: the environment's, else the env
# file's last line for it ("" when neither has one).
effective() {
  local name="$1"
  if [[ -n "${!name+set}" ]]; then
    printf '%s\n' "${!name}"
  elif [[ -f "${ENV_FILE}" ]]; then
    sed -n "s/^${name}=//p" "${ENV_FILE}" | tail -n 1
  fi
}

is_loopback() {
  case "$1" in
    127.* | localhost | ::1 | "[::1]") return 0 ;;
    *) return 1 ;;
  esac
}

# Grafana and the live page published beyond loopback need a real password:
# Grafana's default (admin/admin) would be open to the network.
check_bind() {
  local bind="${STACK_BIND:-127.0.0.1}" password
  is_loopback "${bind}" && return 0
  password="$(effective GRAFANA_ADMIN_PASSWORD)"
  if [[ -z "${password}" || "${password}" == admin ]]; then
    err "refusing to start: STACK_BIND=${bind} publishes Grafana beyond this host and"
    err "GRAFANA_ADMIN_PASSWORD is '${password}' (empty, or the default). Remove its line"
    err "from ${ENV_FILE} (a random one is generated) or set one of your own."
    return 1
  fi
}

# Creates the env file once (mode 0600, atomically: never over an existing
# file) and appends each generated secret it lacks. Values already there,
# whoever wrote them, are left alone.
ensure_env_file() {
  local name mode
  mkdir -p "$(dirname "${ENV_FILE}")"
  if [[ ! -e "${ENV_FILE}" ]]; then
    if (
      umask 077
      set -o noclobber
      cat >"${ENV_FILE}" <<EOT
# gestor's stack: settings and secrets for docker compose (docker-compose.yml).
# Written by scripts/run-stack.sh on its first run, mode 0600. It only ever
# appends a secret this file lacks; it never changes a value. Edit by hand to
# change one (then: scripts/run-stack.sh, which recreates what changed).
EOT
    ) 2>/dev/null; then
      log "created ${ENV_FILE} (mode 0600) for the stack's secrets"
    fi
  fi
  if [[ ! -f "${ENV_FILE}" ]]; then
    err "${ENV_FILE} is not a regular file"
    return 1
  fi
  mode="$(stat -c '%a' "${ENV_FILE}")"
  if [[ "${mode}" != 600 ]]; then
    chmod 600 "${ENV_FILE}"
    log "${ENV_FILE} was mode ${mode}: now 0600 (it holds secrets)"
  fi
  for name in "${GENERATED_SECRETS[@]}"; do
    if ! grep -q "^${name}=" "${ENV_FILE}"; then
      printf '%s=%s\n' "${name}" "$(random_secret)" >>"${ENV_FILE}"
      log "generated ${name} in ${ENV_FILE}"
    fi
  done
}

image_present() {
  "${DOCKER}" image inspect "$1" >/dev/null 2>&1
}

# gestor's image: the Dockerfile's default target compiles in the official
# Rust image. Where that image cannot be pulled, the binary is built here with
# cargo and the Dockerfile's `prebuilt` target packages it.
build_gestor() {
  log "building ${GESTOR_IMAGE}"
  if "${DOCKER}" build -t "${GESTOR_IMAGE}" "${REPO_ROOT}"; then
    return 0
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    err "building ${GESTOR_IMAGE} failed and cargo is not installed for the offline build"
    return 1
  fi
  log "the Rust image is not available: building the binary with cargo and packaging it"
  (cd "${REPO_ROOT}" && cargo build --release --locked)
  "${DOCKER}" build --target prebuilt -t "${GESTOR_IMAGE}" "${REPO_ROOT}"
}

build_images() {
  if [[ -x "${REPO_ROOT}/scripts/build-base-image.sh" ]] && ! image_present debian:bookworm-slim; then
    "${REPO_ROOT}/scripts/build-base-image.sh"
  fi
  if [[ "${REBUILD}" == true ]] || ! image_present "${GESTOR_IMAGE}"; then
    build_gestor
  fi
  if [[ "${REBUILD}" == true ]] || ! image_present "${LOGGER_IMAGE}"; then
    log "building ${LOGGER_IMAGE}"
    "${DOCKER}" build -t "${LOGGER_IMAGE}" "${REPO_ROOT}/logger"
  fi
}

load_module() {
  if [[ -e "${SYSINFO}" ]]; then
    log "kernel module already loaded (${SYSINFO} exists)"
    return 0
  fi
  local build_dir
  build_dir="/lib/modules/$(uname -r)/build"
  if [[ ! -d "${build_dir}" || ! -d "${REPO_ROOT}/kernel_module" ]]; then
    log "no kernel headers for $(uname -r) (${build_dir}): skipping the module;"
    log "gestor uses its userspace /proc collector instead"
    return 0
  fi
  if make -C "${REPO_ROOT}/kernel_module" >/dev/null \
    && insmod "${REPO_ROOT}/kernel_module/gestor_containers.ko"; then
    log "kernel module loaded: ${SYSINFO}"
  else
    err "could not build or load the kernel module; gestor falls back to userspace"
  fi
}

install_cron() {
  local args=("${CRON_ARGS[@]}")
  if [[ ! -x "${REPO_ROOT}/cron/install.sh" ]]; then
    err "cron/install.sh not found"
    return 1
  fi
  # The generator's image: the real one when it is here or can be pulled,
  # else the local stand-in built from Debian's `stress` (hosts without a
  # registry). An --image given after `--` wins.
  if [[ " ${args[*]} " != *" --image "* ]]; then
    if ! image_present "${STRESS_IMAGE_DEFAULT}" \
      && ! "${DOCKER}" pull "${STRESS_IMAGE_DEFAULT}" >/dev/null 2>&1; then
      log "cannot pull ${STRESS_IMAGE_DEFAULT}: the generator uses gestor/stress:latest (Debian's stress)"
      "${REPO_ROOT}/scripts/build-images.sh" >/dev/null
      args+=(--image gestor/stress:latest)
    fi
  fi
  # cron.d entries need a running cron daemon.
  if ! command -v cron >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]]; then
    apt_install_missing cron
  fi
  if ! pgrep -x cron >/dev/null 2>&1; then
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
      systemctl enable --now cron
    else
      cron
    fi
  fi
  "${REPO_ROOT}/cron/install.sh" "${args[@]}"
}

# Starts gestor, the log service and every monitoring service whose image is
# here or can be pulled; one that cannot (no registry) is left out, said so.
start_stack() {
  local service
  STARTED=(gestor logger)
  for service in "${MONITORING_SERVICES[@]}"; do
    if image_present "${MONITORING_IMAGE[${service}]}" || compose pull "${service}"; then
      STARTED+=("${service}")
    else
      err "cannot pull ${MONITORING_IMAGE[${service}]}: starting the stack without ${service}"
    fi
  done
  compose up -d "${STARTED[@]}"
}

started() {
  [[ " ${STARTED[*]} " == *" $1 "* ]]
}

# GF_SECURITY_ADMIN_PASSWORD only counts when Grafana creates its database:
# set the env file's password on every run, so it stays the one that works.
set_grafana_password() {
  local id status="" password
  started grafana || return 0
  id="$(compose ps -q grafana)"
  for _ in $(seq 1 90); do
    status="$("${DOCKER}" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "${id}" 2>/dev/null || true)"
    [[ "${status}" == healthy ]] && break
    sleep 1
  done
  password="$(effective GRAFANA_ADMIN_PASSWORD)"
  if [[ "${status}" != healthy ]] \
    || ! printf '%s\n' "${password}" | compose exec -T grafana \
      grafana cli admin reset-admin-password --password-from-stdin >/dev/null 2>&1; then
    err "could not set Grafana's admin password (status: ${status:-unknown}); on a new"
    err "Grafana it is already the env file's; else: ${COMPOSE[*]} exec grafana grafana cli admin reset-admin-password"
  fi
}

wait_healthy() {
  local id status=""
  id="$(compose ps -q gestor)"
  for _ in $(seq 1 60); do
    status="$("${DOCKER}" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "${id}" 2>/dev/null || true)"
    [[ "${status}" == healthy ]] && return 0
    sleep 1
  done
  err "gestor is not healthy after 60 s (status: ${status:-unknown}); see: ${COMPOSE[*]} logs gestor"
  return 1
}

# The host port Docker published a service's port on (it picks one for 0).
published_port() {
  local address
  address="$(compose port "$1" "$2" 2>/dev/null | tail -n 1)"
  printf '%s\n' "${address##*:}"
}

print_urls() {
  local host="${STACK_BIND:-127.0.0.1}" service
  [[ "${host}" == 0.0.0.0 ]] && host="$(hostname -f 2>/dev/null || hostname)"
  printf '\ngestor'"'"'s stack is up:\n'
  printf '  log service  http://%s:%s/  (live page; writes need LOGGER_TOKEN)\n' \
    "${host}" "$(published_port logger 8000)"
  if started grafana; then
    printf '  Grafana      http://%s:%s/  user %s, password %s\n' "${host}" \
      "$(published_port grafana 3000)" "${GRAFANA_ADMIN_USER:-admin}" \
      "$(effective GRAFANA_ADMIN_PASSWORD)"
  fi
  printf 'On this host only:\n'
  printf '  gestor       http://127.0.0.1:%s/metrics  (also /healthz, /api/v1/state)\n' \
    "$(published_port gestor 9797)"
  if started prometheus; then
    printf '  Prometheus   http://127.0.0.1:%s/  (alerts: /alerts)\n' \
      "$(published_port prometheus 9090)"
  fi
  if started alertmanager; then
    printf '  Alertmanager http://127.0.0.1:%s/  (every alert goes to the log service)\n' \
      "$(published_port alertmanager 9093)"
  fi
  for service in "${MONITORING_SERVICES[@]}"; do
    started "${service}" || printf '  %s: not started (its image could not be pulled)\n' "${service}"
  done
  printf 'Secrets (LOGGER_TOKEN, GRAFANA_ADMIN_PASSWORD): %s\n' "${ENV_FILE}"
  printf 'Stop it with: scripts/%s --down\n' "${PROG}"
}

main() {
  parse_args "$@"
  ensure_env_file
  if [[ "${INIT_ENV}" == true ]]; then
    return 0
  fi
  if [[ "${DOWN}" != true ]]; then
    check_bind
  fi
  if [[ -x "${REPO_ROOT}/scripts/ensure-docker.sh" ]]; then
    "${REPO_ROOT}/scripts/ensure-docker.sh"
  fi
  pick_compose
  if [[ "${DOWN}" == true ]]; then
    compose down
    return 0
  fi
  build_images
  if [[ "${WITH_MODULE}" == true ]]; then
    load_module
  fi
  start_stack
  wait_healthy
  set_grafana_password
  if [[ "${WITH_CRON}" == true ]]; then
    install_cron
  fi
  compose ps
  print_urls
}

main "$@"
