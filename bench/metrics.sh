#!/usr/bin/env bash
# Size of one /metrics scrape and the time to render it with 100 and with
# 1,000 containers' series (goal: <= 10 ms at 1,000). Release build.
#   bench/metrics.sh [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
if ((${#sizes[@]} == 0)); then
  sizes=(100 1000)
fi
cargo run --release -q --example metrics_render -- "${sizes[@]}"
