#!/usr/bin/env bash
# The logger's test suite (`make test-logger`): makes logger/.venv from the
# pinned requirements when missing or stale (scripts/ensure-venv.sh), then
# runs ruff (lint and format) and pytest: TestClient tests on both engines
# (SQLite, and PostgreSQL on a scratch server of Debian's postgresql-15), real uvicorn
# processes (SIGKILL durability, live stream), a headless Chromium on the live
# page, and the Docker image on the real engine. Extra arguments go to pytest
# (e.g. -m "not docker", -k sse).
set -euo pipefail

LOGGER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly LOGGER_DIR
readonly REPO_ROOT="${LOGGER_DIR}/.."
readonly VENV="${LOGGER_DIR}/.venv"
# postgresql-15: the suite's PostgreSQL engine runs on a real server
# (tests/pg.py starts one with initdb/pg_ctl in a scratch directory).
readonly DEBIAN_PACKAGES=(python3 python3-venv chromium postgresql-15)

readonly PROG="logger/tests/run.sh"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

ensure_docker() {
  # The image test needs an engine and the local base image; both scripts
  # are idempotent and return at once when all is there.
  if [[ -x "${REPO_ROOT}/scripts/ensure-docker.sh" ]]; then
    "${REPO_ROOT}/scripts/ensure-docker.sh"
  fi
  if [[ -x "${REPO_ROOT}/scripts/build-base-image.sh" ]]; then
    "${REPO_ROOT}/scripts/build-base-image.sh"
  fi
}

main() {
  local started=${SECONDS}
  apt_install_missing "${DEBIAN_PACKAGES[@]}"
  "${LOGGER_DIR}/scripts/ensure-venv.sh"
  ensure_docker
  cd "${LOGGER_DIR}"
  # The repository's pinned ruff and root ruff.toml (what `make lint` runs).
  "${REPO_ROOT}/scripts/ensure-venv.sh" "${REPO_ROOT}/.venv" \
    "${REPO_ROOT}/scripts/requirements-lint.txt"
  "${REPO_ROOT}/.venv/bin/ruff" check .
  "${REPO_ROOT}/.venv/bin/ruff" format --check .
  "${VENV}/bin/python" -m pytest "$@"
  echo "logger/tests: done in $((SECONDS - started)) s"
}

main "$@"
