#!/usr/bin/env bash
# Logger figures (issue 5): ingest rate in batches of 100 and graph render
# time over 100,000 records, against a real uvicorn on loopback.
# Usage: bench/logger.sh [--records N] [--clients C] [--synchronous FULL|NORMAL]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT

main() {
  "${REPO_ROOT}/logger/scripts/ensure-venv.sh"
  "${REPO_ROOT}/logger/.venv/bin/python" "${REPO_ROOT}/bench/logger_bench.py" "$@"
}

main "$@"
