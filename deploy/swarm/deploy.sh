#!/usr/bin/env bash
#
# Deploys (or upgrades) gestor's fleet stack, deploy/swarm/stack.yml, on the
# swarm whose manager the Docker CLI talks to (DOCKER_HOST is honoured):
#
#   deploy/swarm/deploy.sh [STACK] [-- EXTRA ARGS FOR docker stack deploy]
#
# STACK defaults to `gestor`. Before deploying it
#  - checks that a node labelled gestor.monitoring=true exists and is a
#    manager (the socket proxy that Prometheus' discovery reads, PostgreSQL,
#    Prometheus, Alertmanager and Grafana run there);
#  - creates the Swarm secrets the stack uses when they do not exist, each
#    from its variable if set, else random: gestor_logger_token
#    (LOGGER_TOKEN, what gestor sends), gestor_logger_read_token
#    (LOGGER_READ_TOKEN, reads of the log service), gestor_postgres_password
#    (POSTGRES_PASSWORD), gestor_prometheus_password (PROMETHEUS_PASSWORD,
#    user admin) and gestor_grafana_admin_password (GRAFANA_ADMIN_PASSWORD).
#    Existing secrets are never changed. The value of each secret it creates
#    is kept for the operator in CREDENTIALS_DIR (default ~/.gestor/STACK,
#    mode 0700, one file per secret, mode 0600), as a Swarm secret cannot be
#    read back;
#  - writes Prometheus' web config (user admin, the bcrypt hash of its
#    password; htpasswd from apache2-utils, or python3) into CREDENTIALS_DIR
#    once, so an unchanged password is an unchanged file;
#  - names every config and file secret by a digest of its content, so a
#    changed prometheus.yml, rule file, alertmanager.yml or dashboard becomes
#    a new Swarm config (configs cannot change in place) and only its service
#    is updated.
# Every other setting is an environment variable of stack.yml (docs/fleet.md).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly REPO_ROOT="${HERE}/../.."
readonly DOCKER="${DOCKER:-docker}"
readonly PROMETHEUS_USER=admin

readonly PROG="deploy"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

random_hex() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# The first 12 hex digits of file $1's SHA-256.
digest() {
  sha256sum "$1" | cut -c1-12
}

require_manager() {
  if [[ "$("${DOCKER}" info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" != true ]]; then
    err "the Docker engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} is not a swarm manager"
    err "(docker swarm init on the first node; see docs/fleet.md)"
    return 1
  fi
}

# Exactly what the monitoring services need: a node labelled
# gestor.monitoring=true that is a manager (Swarm discovery reads a manager's
# API, through the socket proxy placed there).
require_monitoring_manager() {
  local labelled managers
  labelled="$("${DOCKER}" node ls --filter node.label=gestor.monitoring=true --format '{{.Hostname}}')"
  if [[ -z "${labelled}" ]]; then
    err "no node is labelled gestor.monitoring=true: PostgreSQL, Prometheus,"
    err "Alertmanager and Grafana have nowhere to run. Label one manager:"
    err "  docker node update --label-add gestor.monitoring=true <manager>"
    return 1
  fi
  managers="$("${DOCKER}" node ls --filter node.label=gestor.monitoring=true \
    --filter role=manager --format '{{.Hostname}}')"
  if [[ -z "${managers}" ]]; then
    err "the node labelled gestor.monitoring=true (${labelled//$'\n'/, }) is not a manager:"
    err "Prometheus' Swarm discovery reads a manager's API, and its socket proxy would"
    err "stay pending there. Promote it or label a manager instead:"
    err "  docker node promote ${labelled%%$'\n'*}"
    err "  docker node update --label-rm gestor.monitoring ${labelled%%$'\n'*}"
    err "  docker node update --label-add gestor.monitoring=true <manager>"
    return 1
  fi
}

# Creates secret $1 unless it exists, from $2 when not empty, else a random
# value; keeps the value it used in CREDENTIALS_DIR/$1.
ensure_secret() {
  local name="$1" value="$2"
  if "${DOCKER}" secret inspect "${name}" >/dev/null 2>&1; then
    return 0
  fi
  [[ -n "${value}" ]] || value="$(random_hex)"
  (umask 077 && printf '%s' "${value}" >"${CREDENTIALS_DIR}/${name}")
  printf '%s' "${value}" \
    | "${DOCKER}" secret create --label gestor.stack=true "${name}" - >/dev/null
  echo "deploy: created the secret ${name}; its value is in ${CREDENTIALS_DIR}/${name}"
}

# The bcrypt hash of stdin's password.
bcrypt_hash() {
  local password
  password="$(cat)"
  if command -v htpasswd >/dev/null 2>&1; then
    htpasswd -nbBC 10 "" "${password}" | tr -d ':\n'
  elif command -v python3 >/dev/null 2>&1 \
    && python3 -W ignore -c 'import crypt, sys; sys.exit(crypt.METHOD_BLOWFISH not in crypt.methods)' 2>/dev/null; then
    printf '%s' "${password}" | python3 -W ignore -c \
      'import crypt, sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)), end="")'
  else
    err "cannot make a bcrypt hash: install htpasswd (Debian: apache2-utils) or python3"
    return 1
  fi
}

# CREDENTIALS_DIR/prometheus-web.yml: Prometheus' --web.config.file, written
# once from the password kept beside it.
ensure_web_config() {
  local secret="$1" file="${CREDENTIALS_DIR}/prometheus-web.yml" hash
  [[ -s "${file}" ]] && return 0
  if [[ ! -s "${CREDENTIALS_DIR}/${secret}" ]]; then
    err "the secret ${secret} exists but its value is not in ${CREDENTIALS_DIR}/${secret},"
    err "so Prometheus' web config cannot be written: put the password there (mode 0600),"
    err "or remove the secret (docker secret rm ${secret}) to make a new one"
    return 1
  fi
  hash="$(bcrypt_hash <"${CREDENTIALS_DIR}/${secret}")"
  (umask 077 && printf '%s\n' \
    "# Prometheus --web.config.file (deploy/swarm/deploy.sh): basic auth on every path." \
    "basic_auth_users:" "  ${PROMETHEUS_USER}: ${hash}" >"${file}")
  echo "deploy: wrote Prometheus' web config (user ${PROMETHEUS_USER}) to ${file}"
}

# The stack's configs and file secrets, each named by its content.
export_digests() {
  PROMETHEUS_CONFIG_DIGEST="$(digest "${HERE}/prometheus.yml")"
  RULES_DIGEST="$(digest "${REPO_ROOT}/prometheus/rules.yml")"
  ALERTMANAGER_CONFIG_DIGEST="$(digest "${HERE}/alertmanager.yml")"
  GRAFANA_DATASOURCE_DIGEST="$(digest "${HERE}/grafana-datasource.yml")"
  GRAFANA_DASHBOARDS_DIGEST="$(digest "${REPO_ROOT}/grafana/provisioning/dashboards/gestor.yml")"
  GRAFANA_DASHBOARD_GESTOR_DIGEST="$(digest "${REPO_ROOT}/grafana/dashboards/gestor.json")"
  PROMETHEUS_WEB_CONFIG="${CREDENTIALS_DIR}/prometheus-web.yml"
  PROMETHEUS_WEB_CONFIG_DIGEST="$(digest "${PROMETHEUS_WEB_CONFIG}")"
  export PROMETHEUS_CONFIG_DIGEST RULES_DIGEST ALERTMANAGER_CONFIG_DIGEST \
    GRAFANA_DATASOURCE_DIGEST GRAFANA_DASHBOARDS_DIGEST GRAFANA_DASHBOARD_GESTOR_DIGEST \
    PROMETHEUS_WEB_CONFIG PROMETHEUS_WEB_CONFIG_DIGEST
}

main() {
  local stack="gestor" prometheus_secret
  if [[ $# -gt 0 && "$1" != -- ]]; then
    stack="$1"
    shift
  fi
  [[ "${1:-}" == -- ]] && shift
  CREDENTIALS_DIR="${CREDENTIALS_DIR:-${HOME}/.gestor/${stack}}"
  require_manager
  require_monitoring_manager
  mkdir -p "${CREDENTIALS_DIR}"
  chmod 0700 "${CREDENTIALS_DIR}"
  prometheus_secret="${PROMETHEUS_PASSWORD_SECRET:-gestor_prometheus_password}"
  ensure_secret "${LOGGER_TOKEN_SECRET:-gestor_logger_token}" "${LOGGER_TOKEN:-}"
  ensure_secret "${LOGGER_READ_TOKEN_SECRET:-gestor_logger_read_token}" "${LOGGER_READ_TOKEN:-}"
  ensure_secret "${POSTGRES_PASSWORD_SECRET:-gestor_postgres_password}" "${POSTGRES_PASSWORD:-}"
  ensure_secret "${prometheus_secret}" "${PROMETHEUS_PASSWORD:-}"
  ensure_secret "${GRAFANA_PASSWORD_SECRET:-gestor_grafana_admin_password}" \
    "${GRAFANA_ADMIN_PASSWORD:-}"
  ensure_web_config "${prometheus_secret}"
  export_digests
  "${DOCKER}" stack deploy --compose-file "${HERE}/stack.yml" "$@" "${stack}"
}

main "$@"
