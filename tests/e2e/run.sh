#!/usr/bin/env bash
# End-to-end suite: the generator, gestor, its log container and a real
# Prometheus on a real Docker engine, then the fault drills. Needs root.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
readonly HERE
readonly REPO="${HERE}/../.."
readonly VENV="${HERE}/.venv"

main() {
  "${REPO}/scripts/build-images.sh"
  (cd "${REPO}" && cargo build --release -q)
  if [[ ! -x "${VENV}/bin/pytest" ]]; then
    python3 -m venv "${VENV}"
    "${VENV}/bin/pip" install -q pytest==8.3.4
  fi
  cd "${HERE}"
  "${VENV}/bin/pytest" -p no:cacheprovider -v -s "$@" test_logger_container.py test_loop.py test_records.py test_faults.py
}

main "$@"
