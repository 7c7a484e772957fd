#!/usr/bin/env bash
# Log service figures, in one run, against a real uvicorn.
#
#   bench/logger.sh [ARGS...]          issues 5 and 12: ingest rate in batches
#     of 100, graph render time over 100,000 records, ingest latency alone and
#     while 20 clients fetch graphs, start-up on databases of 10^4 and 10^6
#     records (about 3 minutes; ARGS: bench/logger_bench.py --help)
#   bench/logger.sh --fleet [ARGS...]  issue 25: the one-host batch figure,
#     the fleet ramp (simulated nodes and live pages, bench/fleet-load) on
#     SQLite with 1 worker and PostgreSQL with 2 and 4, and graphs and host
#     totals at 5k and 500k records on both engines (ARGS: bench/fleet_bench.py
#     --help; needs cargo and Debian's postgresql-15)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT

main() {
  local script="logger_bench.py"
  if [[ "${1:-}" == "--fleet" ]]; then
    script="fleet_bench.py"
    shift
  fi
  "${REPO_ROOT}/logger/scripts/ensure-venv.sh"
  "${REPO_ROOT}/logger/.venv/bin/python" "${REPO_ROOT}/bench/${script}" "$@"
}

main "$@"
