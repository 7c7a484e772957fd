#!/usr/bin/env bash
# Builds the images the tests need, offline: the local Debian base (when no
# registry provides it), the stress image `gestor/stress:latest`, the log
# service image `gestor/logger:latest`, and stand-ins for the official
# Prometheus and Alertmanager images made from Debian's packages
# (`gestor/prometheus-debian:latest`, `gestor/alertmanager-debian:latest`,
# images/prometheus and images/alertmanager), which the stack suite runs in
# docker-compose.yml where prom/* cannot be pulled. All are rebuilt from the
# working tree (Docker's cache makes an unchanged build take a second), so a
# test never runs a stale image. Each name can be set (the variables below).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly REPO_ROOT
readonly DOCKER="${DOCKER:-/usr/bin/docker}"
readonly STRESS_IMAGE="${STRESS_IMAGE:-gestor/stress:latest}"
readonly LOGGER_IMAGE="${LOGGER_IMAGE:-gestor/logger:latest}"
readonly PROMETHEUS_STANDIN="${PROMETHEUS_STANDIN:-gestor/prometheus-debian:latest}"
readonly ALERTMANAGER_STANDIN="${ALERTMANAGER_STANDIN:-gestor/alertmanager-debian:latest}"

main() {
  "${REPO_ROOT}/scripts/ensure-docker.sh"
  "${REPO_ROOT}/scripts/build-base-image.sh"
  "${DOCKER}" build -q -t "${STRESS_IMAGE}" "${REPO_ROOT}/images/stress" >/dev/null
  "${DOCKER}" build -q -t "${LOGGER_IMAGE}" "${REPO_ROOT}/logger" >/dev/null
  "${DOCKER}" build -q -t "${PROMETHEUS_STANDIN}" "${REPO_ROOT}/images/prometheus" >/dev/null
  "${DOCKER}" build -q -t "${ALERTMANAGER_STANDIN}" "${REPO_ROOT}/images/alertmanager" >/dev/null
  echo "build-images: ${STRESS_IMAGE}, ${LOGGER_IMAGE}, ${PROMETHEUS_STANDIN} and ${ALERTMANAGER_STANDIN} are up to date"
}

main "$@"
