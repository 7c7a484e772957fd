#!/usr/bin/env bash
# Makes logger/.venv with the pinned runtime and test requirements
# (scripts/ensure-venv.sh: Debian's python3 when present; re-installs only
# when a requirements file changed). Used by tests/run.sh and bench/logger.sh.
# Prints nothing when all is there.
set -euo pipefail

LOGGER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly LOGGER_DIR

exec "${LOGGER_DIR}/../scripts/ensure-venv.sh" "${LOGGER_DIR}/.venv" \
  "${LOGGER_DIR}/requirements.txt" "${LOGGER_DIR}/requirements-dev.txt"
