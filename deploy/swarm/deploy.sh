#!/usr/bin/env bash
#
# Deploys (or upgrades) gestor's fleet stack, deploy/swarm/stack.yml, on the
# swarm whose manager the Docker CLI talks to (DOCKER_HOST is honoured):
#
#   deploy/swarm/deploy.sh [STACK] [-- EXTRA ARGS FOR docker stack deploy]
#
# STACK defaults to `gestor`. Before deploying it
#  - creates the Swarm secrets the stack uses when they do not exist:
#    gestor_logger_token (LOGGER_TOKEN if set, else 64 random hex digits) and
#    gestor_grafana_admin_password (GRAFANA_ADMIN_PASSWORD if set, else
#    random, printed once); existing secrets are never changed;
#  - sets GESTOR_CONFIG_VERSION to a digest of the config files, so that a
#    changed prometheus.yml, rule file, alertmanager.yml or dashboard becomes
#    a new Swarm config (configs cannot change in place) and its service is
#    updated, while an unchanged one updates nothing;
#  - checks that one node carries the label gestor.monitoring=true (where the
#    log service, Prometheus, Alertmanager and Grafana keep their data).
# Every other setting is an environment variable of stack.yml (docs/fleet.md).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly REPO_ROOT="${HERE}/../.."
readonly DOCKER="${DOCKER:-docker}"
readonly CONFIG_FILES=(
  "${HERE}/prometheus.yml"
  "${HERE}/alertmanager.yml"
  "${REPO_ROOT}/prometheus/rules.yml"
  "${REPO_ROOT}/grafana/provisioning/datasources/prometheus.yml"
  "${REPO_ROOT}/grafana/provisioning/dashboards/gestor.yml"
  "${REPO_ROOT}/grafana/dashboards/gestor.json"
)

readonly PROG="deploy"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

random_hex() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# Creates secret $1 from stdin unless it exists; prints whether it made it.
ensure_secret() {
  local name="$1"
  if "${DOCKER}" secret inspect "${name}" >/dev/null 2>&1; then
    cat >/dev/null
    return 1
  fi
  "${DOCKER}" secret create --label gestor.stack=true "${name}" - >/dev/null
}

config_version() {
  cat "${CONFIG_FILES[@]}" | sha256sum | cut -c1-12
}

main() {
  local stack="gestor" password
  if [[ $# -gt 0 && "$1" != -- ]]; then
    stack="$1"
    shift
  fi
  [[ "${1:-}" == -- ]] && shift
  if [[ "$("${DOCKER}" info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" != true ]]; then
    err "the Docker engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} is not a swarm manager"
    err "(docker swarm init on the first node; see docs/fleet.md)"
    return 1
  fi
  if [[ -z "$("${DOCKER}" node ls -q --filter node.label=gestor.monitoring=true)" ]]; then
    err "no node is labelled gestor.monitoring=true: the log service, Prometheus,"
    err "Alertmanager and Grafana have nowhere to run. Label one manager:"
    err "  docker node update --label-add gestor.monitoring=true <manager>"
    return 1
  fi
  if printf '%s' "${LOGGER_TOKEN:-$(random_hex)}" \
    | ensure_secret "${LOGGER_TOKEN_SECRET:-gestor_logger_token}"; then
    echo "deploy: created the secret ${LOGGER_TOKEN_SECRET:-gestor_logger_token}"
  fi
  password="${GRAFANA_ADMIN_PASSWORD:-$(random_hex | cut -c1-24)}"
  if printf '%s' "${password}" \
    | ensure_secret "${GRAFANA_PASSWORD_SECRET:-gestor_grafana_admin_password}"; then
    if [[ -z "${GRAFANA_ADMIN_PASSWORD:-}" ]]; then
      echo "deploy: Grafana's admin password (shown once): ${password}"
    fi
  fi
  GESTOR_CONFIG_VERSION="$(config_version)"
  export GESTOR_CONFIG_VERSION
  "${DOCKER}" stack deploy --compose-file "${HERE}/stack.yml" "$@" "${stack}"
}

main "$@"
