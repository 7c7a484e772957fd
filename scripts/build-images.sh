#!/usr/bin/env bash
# Builds the images the tests need, offline: the local Debian base (when no
# registry provides it) and the stress image `gestor/stress:latest`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly REPO_ROOT
readonly DOCKER="${DOCKER:-/usr/bin/docker}"
readonly STRESS_IMAGE="${STRESS_IMAGE:-gestor/stress:latest}"

main() {
  "${REPO_ROOT}/scripts/ensure-docker.sh"
  "${REPO_ROOT}/scripts/build-base-image.sh"
  if ! "${DOCKER}" image inspect "${STRESS_IMAGE}" >/dev/null 2>&1; then
    "${DOCKER}" build -q -t "${STRESS_IMAGE}" "${REPO_ROOT}/images/stress" >/dev/null
    echo "build-images: built ${STRESS_IMAGE}"
  fi
}

main "$@"
