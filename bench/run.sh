#!/usr/bin/env bash
# Runs every benchmark and prints its figures (see README, "Performance").
# Each script can also be run alone. Needs root and the test host's setup
# (`make setup`). Takes about 25 minutes with the 10-minute soak (10 more
# the first time, when spool_fsync.sh builds the commit it compares with).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
readonly HERE

run() {
  printf '\n== %s\n' "$*"
  "$@"
}

main() {
  run "${HERE}/cycle.sh"
  run env COUNT=100 CYCLES=20 SOAK_SECONDS="${SOAK_SECONDS:-600}" "${HERE}/cycle.sh"
  run "${HERE}/scale.sh"
  run "${HERE}/accuracy.sh"
  run "${HERE}/metrics.sh"
  run "${HERE}/spool_fsync.sh"
  run "${HERE}/cron.sh"
  run "${HERE}/logger.sh"
  run "${HERE}/kernel_module.sh"
}

main "$@"
