#!/usr/bin/env bash
# Builds the images the tests need, offline: the local Debian base (when no
# registry provides it), the stress image `gestor/stress:latest` and the log
# service image `gestor/logger:latest`. The last two are always rebuilt from
# the working tree (Docker's cache makes an unchanged build take a second),
# so a test never runs a stale image.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly REPO_ROOT
readonly DOCKER="${DOCKER:-/usr/bin/docker}"
readonly STRESS_IMAGE="${STRESS_IMAGE:-gestor/stress:latest}"
readonly LOGGER_IMAGE="${LOGGER_IMAGE:-gestor/logger:latest}"

main() {
  "${REPO_ROOT}/scripts/ensure-docker.sh"
  "${REPO_ROOT}/scripts/build-base-image.sh"
  "${DOCKER}" build -q -t "${STRESS_IMAGE}" "${REPO_ROOT}/images/stress" >/dev/null
  "${DOCKER}" build -q -t "${LOGGER_IMAGE}" "${REPO_ROOT}/logger" >/dev/null
  echo "build-images: ${STRESS_IMAGE} and ${LOGGER_IMAGE} are up to date"
}

main "$@"
