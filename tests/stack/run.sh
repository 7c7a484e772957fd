#!/usr/bin/env bash
#
# The stack suite (`make test-stack`): Prometheus config and alert rules,
# Grafana dashboards, docker-compose.yml and gestor's image, on real software.
#
#  1. promtool check config / check rules / test rules; the dashboards' JSON
#     (valid, unique panel ids, every datasource is the provisioned uid);
#     `docker-compose config` (and `docker compose config` when present); the
#     stack's env file (run-stack.sh --init-env: created once, mode 0600, a
#     random LOGGER_TOKEN, never overwritten) and compose refusing to start
#     without a token.
#  2. The real loop: labelled stress containers of every type (scoped to this
#     run), the real gestor (target/release/gestor) governing them with kills
#     on, Debian's prometheus scraping it every 2 s with the repo's rules.
#     Every panel's PromQL, variables substituted, must return data; the
#     dashboards' container and kill figures must match what Docker says.
#  3. The compose file: gestor's image (the Dockerfile's `prebuilt` stage, fed
#     the binary of step 2) and the logger's image built offline, both started
#     from docker-compose.yml under a unique project name, scoped to this run
#     and in dry-run, with the token run-stack.sh generates into this run's
#     env file; both must become healthy, a real Prometheus must scrape
#     gestor's and the log service's published ports, and gestor's records
#     must reach the log service. `down -v` afterwards.
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
  if ((${#COMPOSE[@]} > 0)) && [[ -n "${WORK}" ]]; then
    [[ -f "${WORK}/stack.env" ]] || printf 'LOGGER_TOKEN=cleanup\n' >"${WORK}/stack.env"
    stack_compose down -v --remove-orphans >/dev/null 2>&1 || true
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
    STACK_ENV_FILE="${WORK}/stack.env" \
    "$@"
}

# compose on this run's project, with the env file run-stack.sh wrote.
stack_compose() {
  compose_env "${COMPOSE[@]}" --env-file "${WORK}/stack.env" \
    -f "${REPO_ROOT}/docker-compose.yml" -p "${PROJECT}" "$@"
}

# The stack's env file, as run-stack.sh --init-env leaves it in a fresh
# directory, on a second run, and next to values someone already wrote.
env_file_is_kept() {
  local dir="${WORK}/env-check" file token again
  mkdir -p "${dir}"
  file="${dir}/new/.env"
  STACK_ENV_FILE="${file}" "${REPO_ROOT}/scripts/run-stack.sh" --init-env >/dev/null
  [[ "$(stat -c '%a' "${file}")" == 600 ]] || { echo "mode $(stat -c '%a' "${file}")"; return 1; }
  token="$(sed -n 's/^LOGGER_TOKEN=//p' "${file}")"
  [[ "${token}" =~ ^[0-9a-f]{64}$ ]] || { echo "LOGGER_TOKEN is '${token}'"; return 1; }
  again="$(sha256sum <"${file}")"
  STACK_ENV_FILE="${file}" "${REPO_ROOT}/scripts/run-stack.sh" --init-env >/dev/null
  [[ "$(sha256sum <"${file}")" == "${again}" ]] || { echo "a second run changed it"; return 1; }
  # A file someone wrote (another setting, a wide mode): kept, the token added.
  printf 'GRAFANA_ADMIN_PASSWORD=mine\n' >"${dir}/.env"
  chmod 644 "${dir}/.env"
  STACK_ENV_FILE="${dir}/.env" "${REPO_ROOT}/scripts/run-stack.sh" --init-env >/dev/null
  grep -qx 'GRAFANA_ADMIN_PASSWORD=mine' "${dir}/.env" || { echo "a value was lost"; return 1; }
  grep -Eqx 'LOGGER_TOKEN=[0-9a-f]{64}' "${dir}/.env" || { echo "no token added"; return 1; }
  [[ "$(stat -c '%a' "${dir}/.env")" == 600 ]] || { echo "mode not tightened"; return 1; }
  # A token someone chose is never replaced.
  printf 'LOGGER_TOKEN=chosen\n' >"${dir}/chosen.env"
  STACK_ENV_FILE="${dir}/chosen.env" "${REPO_ROOT}/scripts/run-stack.sh" --init-env >/dev/null
  [[ "$(cat "${dir}/chosen.env")" == 'LOGGER_TOKEN=chosen' ]] || { echo "a chosen token changed"; return 1; }
}

# gestor and the log service get the same token from the env file, and
# compose refuses to start them without one.
compose_shares_the_token() {
  local file="${WORK}/env-check/new/.env" token config empty="${WORK}/env-check/empty.env"
  token="$(sed -n 's/^LOGGER_TOKEN=//p' "${file}")"
  config="$(env -u LOGGER_TOKEN "${COMPOSE[@]}" --env-file "${file}" \
    -f "${REPO_ROOT}/docker-compose.yml" config)"
  [[ "$(grep -c "TOKEN: ${token}\$" <<<"${config}")" == 2 ]] \
    || { echo "GESTOR_LOGGER_TOKEN and LOGGER_TOKEN are not both the file's token"; return 1; }
  : >"${empty}"
  if env -u LOGGER_TOKEN "${COMPOSE[@]}" --env-file "${empty}" \
    -f "${REPO_ROOT}/docker-compose.yml" config -q 2>"${WORK}/env-check/err"; then
    echo "compose accepted a stack without LOGGER_TOKEN"
    return 1
  fi
  grep -q 'run scripts/run-stack.sh' "${WORK}/env-check/err"
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
    env LOGGER_TOKEN=check "${COMPOSE[@]}" -f "${REPO_ROOT}/docker-compose.yml" config -q
  if command -v docker-compose >/dev/null 2>&1 && [[ "${COMPOSE[0]}" != docker-compose ]]; then
    check "docker-compose.yml: docker-compose (1.x) config" \
      env LOGGER_TOKEN=check docker-compose -f "${REPO_ROOT}/docker-compose.yml" config -q
  fi
  check "run-stack.sh --init-env: env file created once, 0600, random LOGGER_TOKEN, never overwritten" \
    env_file_is_kept
  check "docker-compose.yml: gestor and the log service share the env file's token; none: refused" \
    compose_shares_the_token
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

# Starts Prometheus on a port of its choosing scraping gestor at $1 (and the
# log service at $3, when given); sets PROM_PORT.
start_prometheus() {
  local target="$1" dir="$2" logger="${3:-}"
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
  if [[ -n "${logger}" ]]; then
    cat >>"${dir}/prometheus.yml" <<EOF
  - job_name: logger
    static_configs:
      - targets: ["${logger}"]
EOF
  fi
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

env_file_written() {
  [[ "$(stat -c '%a' "$1")" == 600 ]] && grep -Eqx 'LOGGER_TOKEN=[0-9a-f]{64}' "$1"
}

write_refused() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data '[]' "$1/logs")"
  echo "POST /logs without a token: ${code}"
  [[ "${code}" == 401 ]]
}

# Every rule loads and evaluates; none of the log service's alerts fires.
logger_rules_quiet() {
  local firing
  python3 "${CHECKER}" rules --prometheus "$1" --min "${RULES}" || return 1
  firing="$(python3 "${CHECKER}" query --prometheus "$1" \
    'ALERTS{alertname=~"GestorLogger.*|GestorRecordsStopped"}')"
  echo "firing: ${firing:-none}"
  [[ -z "${firing}" ]]
}

# The user's one command, on this run's images, ports and scope, in dry run.
compose_stack() {
  log "compose: scripts/run-stack.sh, project ${PROJECT} (dry run, scope ${SCOPE}-compose)"
  if [[ ! -x "${GESTOR_BIN}" ]]; then
    fail "compose: gestor binary missing"
    return 0
  fi
  local gestor_id logger_id gestor_addr logger_addr prom watched
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
  check "compose: run-stack.sh wrote the env file (0600) with a random LOGGER_TOKEN" \
    env_file_written "${WORK}/stack.env"
  gestor_id="$(stack_compose ps -q gestor)"
  logger_id="$(stack_compose ps -q logger)"
  if [[ -n "${gestor_id}" && -n "${logger_id}" ]] \
    && wait_for 120 both_healthy "${gestor_id}" "${logger_id}"; then
    pass "compose: gestor and logger become healthy"
  else
    fail "compose: gestor and logger become healthy (gestor: $(health_of "${gestor_id}"), logger: $(health_of "${logger_id}"))"
    "${DOCKER}" logs --tail 20 "${gestor_id}" 2>&1 | sed 's/^/    gestor: /'
    "${DOCKER}" logs --tail 20 "${logger_id}" 2>&1 | sed 's/^/    logger: /'
    return 0
  fi
  # Published on ports Docker picked (GESTOR_PORT=0, LOGGER_PORT=0): ask where.
  gestor_addr="$(stack_compose port gestor 9797)"
  logger_addr="$(stack_compose port logger 8000)"
  if ! start_prometheus "${gestor_addr}" "${WORK}/prom-compose" "${logger_addr}"; then
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
  check "compose: gestor ships records to the compose logger, with the env file's LOGGER_TOKEN" \
    wait_for 30 prom_at_least "${prom}" 'gestor_log_records_sent_total' 1
  check "compose: the log service refuses a write without the token (401)" \
    write_refused "http://${logger_addr}"
  check "compose: Prometheus scrapes the log service (job logger) and sees gestor's records stored" \
    wait_for 30 prom_at_least "${prom}" \
    'up{job="logger"} * on(instance) group_left() gestor_logger_records_stored_total' 1
  check "compose: the log service's alert rules evaluate on its real series, none firing" \
    wait_for 30 logger_rules_quiet "${prom}"
  check "compose: dry run kept the scoped container" is_running "${watched}"
  if stack_compose down -v >"${WORK}/compose-down.log" 2>&1 \
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
