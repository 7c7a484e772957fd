#!/usr/bin/env bash
# Log service figures (issues 5 and 12), in one run, against a real uvicorn on
# loopback: ingest rate in batches of 100, graph render time over 100,000
# records, ingest latency alone and while 20 clients fetch graphs, start-up
# time on databases of 10^4 and 10^6 records (and their one-time migration).
# Takes about 3 minutes. Usage: bench/logger.sh [--records N] [--clients C]
# [--synchronous FULL|NORMAL] [--load-seconds S] [--startup-sizes 10000,1000000]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT

main() {
  "${REPO_ROOT}/logger/scripts/ensure-venv.sh"
  "${REPO_ROOT}/logger/.venv/bin/python" "${REPO_ROOT}/bench/logger_bench.py" "$@"
}

main "$@"
