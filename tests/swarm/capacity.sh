#!/usr/bin/env bash
#
# The per-node figures behind the fleet capacity model (docs/fleet.md): one
# node's gestor at the defaults (10 s cycle) with the generator's default
# load (10 stress containers every 30 s), shipping to a real log service, for
# DURATION seconds (default 600). Not part of `make test`; as root, after
# `make setup`:
#
#   tests/swarm/capacity.sh [DURATION]
#
# It runs, on this host's engine and all scoped to this run (label
# gestor.scope=capacity-<id>, removed on exit): the log service's image
# (published on a loopback port Docker picks), the release binary of gestor
# (listening on a port the kernel picks, --only-label on the scope), and
# cron/create_containers.sh every 30 s. After every cycle it reads /metrics.
# It prints, per node:
#   - samples per scrape and bytes per scrape (mean, max);
#   - distinct series over the run, and how many of them are per container
#     (they come and go with the containers: the series churn Prometheus holds
#     in its head block for about 2-3 h);
#   - records per hour, by event, and bytes per record (JSON as sent, and the
#     log service's database per record, from its own /metrics);
#   - the log service's ingest rate for a fleet's traffic: INGEST_CLIENTS
#     clients (default 16, each a node) each POSTing batches of the size one
#     node sends per cycle (the run's records per cycle), back to back for
#     INGEST_SECONDS (default 20): batches and records per second, latency.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly DOCKER=/usr/bin/docker
readonly GESTOR_BIN="${GESTOR_BIN:-${REPO_ROOT}/target/release/gestor}"
readonly DURATION="${1:-600}"
readonly GENERATOR_EVERY=30
readonly INGEST_CLIENTS="${INGEST_CLIENTS:-16}"
readonly INGEST_SECONDS="${INGEST_SECONDS:-20}"
# wait_for polls twice a second here (the default is once).
readonly WAIT_FOR_INTERVAL=0.5
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
readonly RUN_ID
readonly SCOPE="capacity-${RUN_ID}"
readonly TOKEN="${RUN_ID}${RUN_ID}"

WORK=""
GESTOR_PID=""
LOGGER=""

readonly PROG="capacity"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"
log() { printf 'capacity: [%4d s] %s\n' "${SECONDS}" "$*"; }

cleanup() {
  set +e
  [[ -n "${GESTOR_PID}" ]] && kill "${GESTOR_PID}" 2>/dev/null && wait "${GESTOR_PID}" 2>/dev/null
  local ids
  ids="$("${DOCKER}" ps -aq --filter "label=gestor.scope=${SCOPE}")"
  # shellcheck disable=SC2086 # one id per word
  [[ -n "${ids}" ]] && "${DOCKER}" rm -f -v ${ids} >/dev/null
  [[ -n "${WORK}" ]] && rm -rf "${WORK}"
}


start_logger() {
  "${DOCKER}" run -d --name "gestor-${SCOPE}-logger" --label "gestor.scope=${SCOPE}" \
    --label gestor.protected=true -e "LOGGER_TOKEN=${TOKEN}" \
    -p 127.0.0.1::8000 gestor/logger:latest >/dev/null
  local port
  port="$("${DOCKER}" port "gestor-${SCOPE}-logger" 8000/tcp | head -n 1 | sed 's/.*://')"
  LOGGER="http://127.0.0.1:${port}"
  wait_for 120 "the log service's /healthz" curl -fsS "${LOGGER}/healthz"
}

start_gestor() {
  "${GESTOR_BIN}" run --listen 127.0.0.1:0 --ready-file "${WORK}/ready" \
    --only-label "gestor.scope=${SCOPE}" --hostname "${SCOPE}" \
    --logger-url "${LOGGER}" --create-logger=false --logger-token "${TOKEN}" \
    --spool-dir "${WORK}/spool" --log-format json >"${WORK}/gestor.log" 2>&1 &
  GESTOR_PID=$!
  wait_for 30 "gestor's ready file" test -s "${WORK}/ready"
}

# /metrics once, after cycle number $1 is done: samples and bytes, and every
# series name into series.txt.
scrape() {
  local addr="$1" out="${WORK}/scrape"
  curl -fsS "http://${addr}/metrics" >"${out}"
  printf '%s %s\n' "$(grep -vc '^#' "${out}")" "$(wc -c <"${out}")" >>"${WORK}/scrapes.txt"
  grep -v '^#' "${out}" | sed 's/ [^ ]*$//' >>"${WORK}/series.txt"
}

# True when gestor at $1 has no record waiting to be shipped.
queue_empty() {
  [[ "$(curl -fsS "http://$1/metrics" | awk '/^gestor_log_queue_records/ { print $2 }')" == 0 ]]
}

cycles_done() {
  curl -fsS "http://$1/metrics" | awk '/^gestor_cycles_total/ { n += $2 } END { print n + 0 }'
}

main() {
  [[ -x "${GESTOR_BIN}" ]] || { err "build ${GESTOR_BIN} first (cargo build --release)"; return 1; }
  WORK="$(mktemp -d /tmp/gestor-capacity.XXXXXX)"
  trap cleanup EXIT
  "${REPO_ROOT}/scripts/build-images.sh" >/dev/null
  start_logger
  start_gestor
  local addr next_gen=0 start=${SECONDS} seen cycles
  local -a generators=()
  addr="$(cat "${WORK}/ready")"
  log "gestor at ${addr}, log service at ${LOGGER}; ${DURATION} s"
  seen="$(cycles_done "${addr}")"
  while ((SECONDS - start < DURATION)); do
    if ((SECONDS - start >= next_gen)); then
      "${REPO_ROOT}/cron/create_containers.sh" -q --image gestor/stress:latest --log-file '' \
        --label "gestor.scope=${SCOPE}" --lock-file "${WORK}/generator.lock" &
      generators+=("$!")
      next_gen=$((next_gen + GENERATOR_EVERY))
    fi
    cycles="$(cycles_done "${addr}")"
    if ((cycles > seen)); then
      seen="${cycles}"
      scrape "${addr}"
    fi
    sleep 0.5
  done
  # The generator's runs only (a bare `wait` would wait for gestor too).
  wait "${generators[@]}"
  # Let the last records reach the service, then read the figures.
  wait_for 30 "gestor's log queue to empty" queue_empty "${addr}"
  curl -fsS "${LOGGER}/logs/export?host=${SCOPE}" >"${WORK}/records.jsonl"
  curl -fsS "${LOGGER}/metrics" >"${WORK}/logger.metrics"
  report
  ingest
}

# POSTs fleet-shaped traffic to the log service and prints what it took:
# INGEST_CLIENTS threads, each a node sending one batch per request of the
# run's mean records per cycle (copies of the run's own records, new ids).
ingest() {
  local per_cycle
  per_cycle="$(jq -s '(length / ([.[] | select(.event == "cycle")] | length)) | ceil' \
    "${WORK}/records.jsonl")"
  "${REPO_ROOT}/logger/scripts/ensure-venv.sh" >/dev/null
  "${REPO_ROOT}/logger/.venv/bin/python" - "${LOGGER}" "${TOKEN}" "${WORK}/records.jsonl" \
    "${per_cycle}" "${INGEST_CLIENTS}" "${INGEST_SECONDS}" <<'PY'
import json, statistics, sys, threading, time, urllib.request, uuid

url, token, path, per_cycle, clients, seconds = sys.argv[1:7]
per_cycle, clients, seconds = int(per_cycle), int(clients), float(seconds)
sample = [json.loads(line) for line in open(path)][:per_cycle]
latencies, lock = [], threading.Lock()
deadline = time.monotonic() + seconds


def node(n):
    mine = []
    while time.monotonic() < deadline:
        batch = [dict(r, id=uuid.uuid4().hex, host=f"ingest-{n}") for r in sample]
        req = urllib.request.Request(
            url + "/logs", json.dumps(batch).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + token},
        )
        t = time.monotonic()
        urllib.request.urlopen(req, timeout=30).read()
        mine.append(time.monotonic() - t)
    with lock:
        latencies.extend(mine)


threads = [threading.Thread(target=node, args=(n,)) for n in range(clients)]
start = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
took = time.monotonic() - start
q = statistics.quantiles(latencies, n=100)
print(f"  ingest, {clients} clients, batches of {per_cycle} records (one node's cycle):"
      f" {len(latencies) / took:.0f} batches/s, {len(latencies) * per_cycle / took:.0f} records/s;"
      f" batch p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")
PY
}

report() {
  local hours records json_bytes db_bytes db_records
  hours="$(bc -l <<<"${DURATION} / 3600")"
  echo
  echo "capacity: one node, ${DURATION} s at gestor's defaults, 10 containers every ${GENERATOR_EVERY} s"
  awk '{ n++; s += $1; b += $2; if ($1 > ms) ms = $1; if ($2 > mb) mb = $2 }
    END { printf "  scrapes: %d; samples per scrape mean %.0f, max %d; bytes per scrape mean %.0f, max %d\n", n, s / n, ms, b / n, mb }' \
    "${WORK}/scrapes.txt"
  local distinct per_container
  distinct="$(sort -u "${WORK}/series.txt" | wc -l)"
  per_container="$(sort -u "${WORK}/series.txt" | grep -c '^gestor_container_' || true)"
  printf '  distinct series over the run: %d, of which per container: %d (%.0f per hour)\n' \
    "${distinct}" "${per_container}" "$(bc -l <<<"${per_container} / ${hours}")"
  printf '  distinct containers seen: %d\n' \
    "$(grep '^gestor_container_memory_bytes' "${WORK}/series.txt" | sort -u | wc -l)"
  records="$(wc -l <"${WORK}/records.jsonl")"
  json_bytes="$(wc -c <"${WORK}/records.jsonl")"
  printf '  records: %d (%.0f per hour); JSON %.0f bytes per record\n' \
    "${records}" "$(bc -l <<<"${records} / ${hours}")" "$(bc -l <<<"${json_bytes} / ${records}")"
  jq -r .event "${WORK}/records.jsonl" | sort | uniq -c \
    | awk -v h="${hours}" '{ printf "    %-12s %6d (%.0f per hour)\n", $2, $1, $1 / h }'
  db_bytes="$(awk '/^gestor_logger_database_bytes/ { print $2 }' "${WORK}/logger.metrics")"
  db_records="$(awk '/^gestor_logger_database_records/ { n += $2 } END { print n }' "${WORK}/logger.metrics")"
  printf '  log service database: %.0f bytes for %d records (%.0f bytes per record, fixed overhead included)\n' \
    "${db_bytes}" "${db_records}" "$(bc -l <<<"${db_bytes} / ${db_records}")"
}

main "$@"
