#!/usr/bin/env bash
#
# The stack suite (`make test-stack`): Prometheus config and alert rules,
# Grafana dashboards, docker-compose.yml and gestor's image, on real software.
#
#  1. promtool check config / check rules / test rules; the dashboards' JSON
#     (valid, unique panel ids, every datasource is the provisioned uid);
#     `docker-compose config` (and `docker compose config` when present).
#  2. The real loop: labelled stress containers of every type (scoped to this
#     run), the real gestor (target/release/gestor) governing them with kills
#     on, Debian's prometheus scraping it every 2 s with the repo's rules.
#     Every panel's PromQL, variables substituted, must return data; the
#     dashboards' container and kill figures must match what Docker says.
#  3. The compose file: gestor's image (the Dockerfile's `prebuilt` stage, fed
#     the binary of step 2) and the logger's image built offline, both started
#     from docker-compose.yml under a unique project name, scoped to this run
#     and in dry-run; both must become healthy and a real Prometheus must
#     scrape gestor's published port. `down -v` afterwards.
#
# The official Prometheus and Grafana images cannot be pulled here: they are
# not started (see docs/stack.md). Everything this suite creates carries the
# run's scope label or project name and is removed on exit.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly DOCKER=/usr/bin/docker
readonly STRESS_IMAGE="${STRESS_IMAGE:-gestor/stress:latest}"
readonly GESTOR_BIN="${GESTOR_BIN:-${REPO_ROOT}/target/release/gestor}"
readonly CHECKER="${REPO_ROOT}/tests/stack/check_dashboards.py"
readonly INTERVAL=2          # gestor's cycle and the scrape interval here, seconds
readonly PER_TYPE=2          # stress containers started per type
readonly TYPES=(cpu ram io disk)
RULES="$(grep -c '^ *- alert:' "${REPO_ROOT}/prometheus/rules.yml")"
readonly RULES
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
readonly RUN_ID
readonly SCOPE="stack-${RUN_ID}"
readonly PROJECT="gestorstack${RUN_ID}"
readonly TEST_TAG="stack-${RUN_ID}"

WORK=""
PROM_PORT=""
COMPOSE=()
PIDS=()
PASSED=0
FAILED=0

err() { printf 'test-stack: %s\n' "$*" >&2; }
log() { printf 'test-stack: [%3d s] %s\n' "${SECONDS}" "$*"; }

pass() {
  PASSED=$((PASSED + 1))
  printf 'PASS %s\n' "$*"
}

fail() {
  FAILED=$((FAILED + 1))
  printf 'FAIL %s\n' "$*"
}

# Runs a command as one check: PASS, or FAIL followed by its output.
check() {
  local name="$1"
  shift
  local out
  if out="$("$@" 2>&1)"; then
    pass "${name}"
  else
    fail "${name}"
    printf '%s\n' "${out}" | sed 's/^/    /'
  fi
}

# As check, but shows the command's output either way.
check_shown() {
  local name="$1"
  shift
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  printf '%s\n' "${out}" | sed 's/^/    /'
  if ((rc == 0)); then
    pass "${name}"
  else
    fail "${name}"
  fi
}

# A loopback URL whose connections are refused: the discard port, which the
# kernel never hands out as an ephemeral port and nothing here serves.
dead_url() {
  if (exec 3<>/dev/tcp/127.0.0.1/9) 2>/dev/null; then
    err "something listens on 127.0.0.1:9; the dead-logger check needs it unused"
    return 1
  fi
  printf 'http://127.0.0.1:9\n'
}

# Prints the port of the address in file $1 (host:port), once it exists.
ready_port() {
  [[ -s "$1" ]] && sed -n 's/.*:\([0-9][0-9]*\)$/\1/p' "$1"
}

# Prints the port Prometheus reports it listens on in log $1 (it was started
# on port 0); whole lines only, as the log is still being written.
prometheus_port() {
  grep -a 'msg="Listening on"' "$1" 2>/dev/null | grep -o 'address=[^ ]*:[0-9]*$' \
    | sed 's/.*://' | head -n 1 | grep .
}

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local timeout="$1"
  shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

scoped_ids() {
  "${DOCKER}" ps -aq --filter "label=gestor.scope=$1"
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "${pid}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "${pid}" 2>/dev/null || true
  done
  if ((${#COMPOSE[@]} > 0)); then
    compose_env "${COMPOSE[@]}" -f "${REPO_ROOT}/docker-compose.yml" -p "${PROJECT}" \
      down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  local scope ids
  for scope in "${SCOPE}" "${SCOPE}-compose"; do
    ids="$(scoped_ids "${scope}" 2>/dev/null || true)"
    if [[ -n "${ids}" ]]; then
      # shellcheck disable=SC2086 # one id per word
      "${DOCKER}" rm -f ${ids} >/dev/null 2>&1 || true
    fi
  done
  "${DOCKER}" rmi "gestor/gestor:${TEST_TAG}" "gestor/logger:${TEST_TAG}" >/dev/null 2>&1 || true
  if [[ -n "${WORK}" ]]; then
    rm -rf "${WORK}"
  fi
}

install_missing() {
  local missing=()
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if ! command -v docker-compose >/dev/null 2>&1 \
    && ! "${DOCKER}" compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
  fi
  if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The compose command: v2 when the Docker CLI has it, else docker-compose 1.x.
pick_compose() {
  if "${DOCKER}" compose version >/dev/null 2>&1; then
    COMPOSE=("${DOCKER}" compose)
  else
    COMPOSE=(docker-compose)
  fi
}

# Runs a compose command with this run's images, ports and scope.
compose_env() {
  GESTOR_IMAGE="gestor/gestor:${TEST_TAG}" \
    LOGGER_IMAGE="gestor/logger:${TEST_TAG}" \
    STACK_BIND=127.0.0.1 \
    GESTOR_PORT=0 \
    LOGGER_PORT=0 \
    GESTOR_ONLY_LABEL="gestor.scope=${SCOPE}-compose" \
    GESTOR_DRY_RUN=true \
    GESTOR_INTERVAL="${INTERVAL}" \
    LOGGER_TOKEN="token-${RUN_ID}" \
    "$@"
}

static_checks() {
  log "static checks"
  check "promtool check config prometheus.yml" \
    promtool check config "${REPO_ROOT}/prometheus.yml"
  check "promtool check rules prometheus/rules.yml" \
    promtool check rules "${REPO_ROOT}/prometheus/rules.yml"
  check "promtool test rules prometheus/tests/rules_test.yml" \
    promtool test rules "${REPO_ROOT}/prometheus/tests/rules_test.yml"
  check "dashboards: valid JSON, unique panel ids, provisioned datasource uid" \
    python3 "${CHECKER}" static --dashboards "${REPO_ROOT}/grafana/dashboards" \
    --datasources "${REPO_ROOT}/grafana/provisioning/datasources"
  check "docker-compose.yml: ${COMPOSE[*]} config" \
    "${COMPOSE[@]}" -f "${REPO_ROOT}/docker-compose.yml" config -q
  if command -v docker-compose >/dev/null 2>&1 && [[ "${COMPOSE[0]}" != docker-compose ]]; then
    check "docker-compose.yml: docker-compose (1.x) config" \
      docker-compose -f "${REPO_ROOT}/docker-compose.yml" config -q
  fi
  check "docker-compose.yml: no top-level name or version key" \
    bash -c "! grep -Eq '^(name|version):' '${REPO_ROOT}/docker-compose.yml'"
}

start_stress() {
  local type="$1" scope="$2" name
  local -a cmd
  case "${type}" in
    cpu) cmd=(stress --cpu 1) ;;
    ram) cmd=(stress --vm 1 --vm-bytes 32M --vm-keep) ;;
    io) cmd=(stress --io 1) ;;
    disk) cmd=(stress --hdd 1 --hdd-bytes 8M) ;;
  esac
  name="${type}-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  "${DOCKER}" run -d --name "${name}" \
    --label gestor.managed=true --label "gestor.type=${type}" --label "gestor.scope=${scope}" \
    --cpus 0.2 --memory 128m "${STRESS_IMAGE}" "${cmd[@]}" >/dev/null
  printf '%s\n' "${name}"
}

# Starts Prometheus on a port of its choosing scraping $1; sets PROM_PORT.
start_prometheus() {
  local target="$1" dir="$2"
  PROM_PORT=""
  mkdir -p "${dir}/tsdb"
  cat >"${dir}/prometheus.yml" <<EOF
global:
  scrape_interval: ${INTERVAL}s
  evaluation_interval: ${INTERVAL}s
rule_files:
  - ${REPO_ROOT}/prometheus/rules.yml
scrape_configs:
  - job_name: gestor
    static_configs:
      - targets: ["${target}"]
EOF
  prometheus --config.file="${dir}/prometheus.yml" --storage.tsdb.path="${dir}/tsdb" \
    --web.listen-address=127.0.0.1:0 >"${dir}/prometheus.log" 2>&1 &
  PIDS+=("$!")
  wait_for 30 prometheus_port "${dir}/prometheus.log" || return 1
  PROM_PORT="$(prometheus_port "${dir}/prometheus.log")"
  wait_for 30 curl -fsS "http://127.0.0.1:${PROM_PORT}/-/ready"
}

# True once Prometheus ($1) has scraped gestor at least $3 times since
# SECONDS was $2.
scraped_since() {
  local window=$((SECONDS - $2))
  prom_at_least "$1" "count_over_time(up{job=\"gestor\"}[${window}s])" "$3"
}

# Prints the value of a one-sample instant query ("" when there is none).
prom_value() {
  python3 "${CHECKER}" query --prometheus "$1" "$2" | awk 'NR == 1 { print $NF }'
}

prom_at_least() {
  local value
  value="$(prom_value "$1" "$2")"
  [[ -n "${value}" ]] && awk -v v="${value}" -v min="$3" 'BEGIN { exit !(v >= min) }'
}

# Docker's count of running containers of a type in a scope, against the
# dashboards' "Running containers by type" query.
running_matches_docker() {
  local prom="$1" scope="$2" type want got
  for type in "${TYPES[@]}"; do
    want="$("${DOCKER}" ps -q --filter "label=gestor.scope=${scope}" \
      --filter "label=gestor.type=${type}" | wc -l)"
    got="$(prom_value "${prom}" "sum by (type) (gestor_containers{state=\"running\",type=\"${type}\"})")"
    if [[ "${got:-none}" != "${want}" ]]; then
      echo "${type}: docker runs ${want}, gestor_containers says ${got:-nothing}"
      return 1
    fi
  done
}

# Docker holds exactly one container per type in the scope (the killed ones
# are stopped and removed), and gestor counted every kill once.
kills_match_docker() {
  local prom="$1" scope="$2" kills="$3" left counted
  left="$(scoped_ids "${scope}" | wc -l)"
  counted="$(prom_value "${prom}" 'sum(gestor_kills_total)')"
  echo "containers left: ${left} (want ${#TYPES[@]}); sum(gestor_kills_total): ${counted} (want ${kills})"
  [[ "${left}" == "${#TYPES[@]}" && "${counted}" == "${kills}" ]]
}

live_loop() {
  log "live loop: ${#TYPES[@]} types x ${PER_TYPE} stress containers, scope ${SCOPE}"
  if [[ ! -x "${GESTOR_BIN}" ]]; then
    fail "gestor binary ${GESTOR_BIN} is missing (cargo build --release)"
    return 0
  fi
  local type i gestor_port dead prom started
  for type in "${TYPES[@]}"; do
    for ((i = 0; i < PER_TYPE; i++)); do
      start_stress "${type}" "${SCOPE}" >/dev/null
    done
  done
  # Nothing listens at the log service's URL: records queue up, retries count.
  dead="$(dead_url)" || { fail "a loopback URL that refuses connections"; return 0; }
  started="${SECONDS}"
  "${GESTOR_BIN}" run --listen 127.0.0.1:0 --ready-file "${WORK}/gestor.ready" \
    --only-label "gestor.scope=${SCOPE}" \
    --interval "${INTERVAL}" --min-per-type 1 --dry-run=false --stop-timeout 1 \
    --sysinfo "${WORK}/no-module" --procfs /proc \
    --logger-url "${dead}" --create-logger=false \
    --spool-dir "${WORK}/spool" >"${WORK}/gestor.log" 2>&1 &
  PIDS+=("$!")
  if ! wait_for 20 ready_port "${WORK}/gestor.ready"; then
    fail "gestor listens and writes its ready file"
    tail -n 20 "${WORK}/gestor.log" | sed 's/^/    /'
    return 0
  fi
  gestor_port="$(ready_port "${WORK}/gestor.ready")"
  if ! wait_for 20 curl -fsS "http://127.0.0.1:${gestor_port}/metrics"; then
    fail "gestor answers /metrics on 127.0.0.1:${gestor_port}"
    tail -n 20 "${WORK}/gestor.log" | sed 's/^/    /'
    return 0
  fi
  pass "gestor answers /metrics on 127.0.0.1:${gestor_port}"
  if ! start_prometheus "127.0.0.1:${gestor_port}" "${WORK}/prom-live"; then
    fail "prometheus ready on 127.0.0.1:${PROM_PORT:-?}"
    tail -n 20 "${WORK}/prom-live/prometheus.log" | sed 's/^/    /'
    return 0
  fi
  prom="http://127.0.0.1:${PROM_PORT}"
  local kills=$((${#TYPES[@]} * (PER_TYPE - 1))) killed_at
  if wait_for 90 prom_at_least "${prom}" 'sum(gestor_kills_total)' "${kills}"; then
    pass "gestor killed the ${kills} surplus containers (Prometheus: sum(gestor_kills_total))"
  else
    fail "gestor killed the ${kills} surplus containers: sum(gestor_kills_total) = $(prom_value "${prom}" 'sum(gestor_kills_total)')"
    tail -n 20 "${WORK}/gestor.log" | sed 's/^/    /'
  fi
  # A full rate() window ($__rate_interval = 4 scrapes) after the last kill.
  killed_at="${SECONDS}"
  wait_for 60 scraped_since "${prom}" "${killed_at}" 5 \
    || fail "Prometheus scrapes gestor 5 times after the last kill"
  check "the kill counter equals the containers Docker no longer has (${kills})" \
    kills_match_docker "${prom}" "${SCOPE}" "${kills}"
  check "one container per type runs (docker), and the dashboards' count agrees" \
    running_matches_docker "${prom}" "${SCOPE}"
  check_shown "every dashboard panel returns data from the real Prometheus" \
    python3 "${CHECKER}" live --dashboards "${REPO_ROOT}/grafana/dashboards" \
    --prometheus "${prom}" --window "$((SECONDS - started))" --step "${INTERVAL}" \
    --scrape-interval "${INTERVAL}"
  check_shown "alert rules load and evaluate without errors on gestor's real series" \
    python3 "${CHECKER}" rules --prometheus "${prom}" --min "${RULES}"
}

is_running() {
  [[ "$("${DOCKER}" inspect -f '{{.State.Running}}' "$1")" == true ]]
}

health_of() {
  "${DOCKER}" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"
}

both_healthy() {
  [[ "$(health_of "$1")" == healthy && "$(health_of "$2")" == healthy ]]
}

# gestor's image as run-stack.sh left it: the Dockerfile's runtime-base
# (non-root user, healthcheck) with the binary in it.
image_is_sound() {
  local image="gestor/gestor:${TEST_TAG}"
  [[ "$("${DOCKER}" inspect -f '{{.Config.User}}' "${image}")" == gestor ]] \
    && "${DOCKER}" inspect -f '{{json .Config.Healthcheck.Test}}' "${image}" | grep -q healthcheck \
    && "${DOCKER}" run --rm --entrypoint /usr/local/bin/gestor "${image}" --version
}

# The user's one command, on this run's images, ports and scope, in dry run.
compose_stack() {
  log "compose: scripts/run-stack.sh, project ${PROJECT} (dry run, scope ${SCOPE}-compose)"
  if [[ ! -x "${GESTOR_BIN}" ]]; then
    fail "compose: gestor binary missing"
    return 0
  fi
  local file="${REPO_ROOT}/docker-compose.yml" gestor_id logger_id gestor_addr prom watched
  watched="$(start_stress cpu "${SCOPE}-compose")"
  # No registry here: run-stack.sh must fall back to the Dockerfile's prebuilt
  # target for gestor, build the logger from ./logger, find Prometheus and
  # Grafana unpullable and start gestor and the logger alone.
  if ! compose_env env COMPOSE_PROJECT_NAME="${PROJECT}" \
    "${REPO_ROOT}/scripts/run-stack.sh" >"${WORK}/run-stack.log" 2>&1; then
    fail "scripts/run-stack.sh brings the stack up"
    tail -n 40 "${WORK}/run-stack.log" | sed 's/^/    /'
    return 0
  fi
  grep '^run-stack.sh:' "${WORK}/run-stack.log" | sed 's/^/    /' || true
  pass "scripts/run-stack.sh brings the stack up (offline: prebuilt gestor image, logger built)"
  check "gestor image: runs as user gestor, has a HEALTHCHECK and the binary" image_is_sound
  gestor_id="$(compose_env "${COMPOSE[@]}" -f "${file}" -p "${PROJECT}" ps -q gestor)"
  logger_id="$(compose_env "${COMPOSE[@]}" -f "${file}" -p "${PROJECT}" ps -q logger)"
  if [[ -n "${gestor_id}" && -n "${logger_id}" ]] \
    && wait_for 120 both_healthy "${gestor_id}" "${logger_id}"; then
    pass "compose: gestor and logger become healthy"
  else
    fail "compose: gestor and logger become healthy (gestor: $(health_of "${gestor_id}"), logger: $(health_of "${logger_id}"))"
    "${DOCKER}" logs --tail 20 "${gestor_id}" 2>&1 | sed 's/^/    gestor: /'
    "${DOCKER}" logs --tail 20 "${logger_id}" 2>&1 | sed 's/^/    logger: /'
    return 0
  fi
  # Published on ports Docker picked (GESTOR_PORT=0): ask where.
  gestor_addr="$(compose_env "${COMPOSE[@]}" -f "${file}" -p "${PROJECT}" port gestor 9797)"
  if ! start_prometheus "${gestor_addr}" "${WORK}/prom-compose"; then
    fail "prometheus ready for the compose check"
    return 0
  fi
  prom="http://127.0.0.1:${PROM_PORT}"
  check "compose: Prometheus scrapes gestor's published port (up == 1, gestor_build_info)" \
    wait_for 30 prom_at_least "${prom}" 'up{job="gestor"} * on(instance) group_left() gestor_build_info' 1
  check "compose: gestor reads the host's /proc at /host/proc (userspace source, host CPUs)" \
    wait_for 20 prom_at_least "${prom}" \
    "gestor_snapshot_source{source=\"userspace\"} * on() gestor_host_cpus == $(nproc)" 1
  check "compose: gestor sees the processes of a container on the host (${watched})" \
    wait_for 30 prom_at_least "${prom}" "gestor_container_memory_bytes{name=\"${watched}\"}" 1
  check "compose: gestor ships records to the compose logger, with the shared LOGGER_TOKEN" \
    wait_for 30 prom_at_least "${prom}" 'gestor_log_records_sent_total' 1
  check "compose: dry run kept the scoped container" is_running "${watched}"
  if compose_env "${COMPOSE[@]}" -f "${file}" -p "${PROJECT}" down -v >"${WORK}/compose-down.log" 2>&1 \
    && [[ -z "$("${DOCKER}" volume ls -q --filter "name=${PROJECT}_")" ]]; then
    pass "compose: down -v removes the containers and the named volumes"
  else
    fail "compose: down -v removes the containers and the named volumes"
    sed 's/^/    /' "${WORK}/compose-down.log"
  fi
}

main() {
  local start="${SECONDS}"
  install_missing
  "${REPO_ROOT}/scripts/build-images.sh"
  pick_compose
  WORK="$(mktemp -d /tmp/gestor-stack.XXXXXX)"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  static_checks
  if command -v cargo >/dev/null 2>&1; then
    log "cargo build --release"
    if ! (cd "${REPO_ROOT}" && cargo build --release --quiet); then
      err "cargo build --release failed"
      fail "cargo build --release"
    fi
  fi
  live_loop
  compose_stack
  log "done in $((SECONDS - start)) s"
  printf 'test-stack: %d passed, %d failed\n' "${PASSED}" "${FAILED}"
  ((FAILED == 0))
}

main "$@"
