#!/usr/bin/env bash
#
# The stack suite (`make test-stack`): Prometheus config and alert rules,
# Alertmanager's routing, Grafana dashboards, docker-compose.yml and gestor's
# image, on real software.
#
#  1. Static: promtool check config / check rules / test rules, and every
#     alert of rules.yml tested firing and quiet; amtool check-config and
#     every alert routed to the log service; the dashboards' JSON (valid,
#     unique panel ids, the provisioned datasource uid, every query following
#     the `host` variable, nothing that reads wrong at a glance) and its
#     validation against Grafana's own schema (the Foundation SDK), with
#     known-bad dashboards it must catch; `docker-compose config`: what is
#     published beyond loopback, no `service_healthy`, the env file's
#     secrets (LOGGER_TOKEN, GRAFANA_ADMIN_PASSWORD: created once, 0600,
#     random, never overwritten) and compose and run-stack.sh refusing to
#     start without them.
#  2. The real loop: labelled stress containers of every type (scoped to this
#     run), the real gestor (target/release/gestor) governing them with kills
#     on, Debian's prometheus scraping it every 2 s with the repo's rules.
#     Every panel's PromQL, variables substituted, run as Grafana would
#     (panel intervals, aligned steps), must return data; the dashboards'
#     container and kill figures must match what Docker says.
#  3. The compose file, as the user's one command runs it: gestor's image
#     (the Dockerfile's `prebuilt` stage, fed the binary of step 2) and the
#     logger's, built offline; Prometheus and Alertmanager from stand-in
#     images of Debian's packages (the official ones cannot be pulled here);
#     scripts/run-stack.sh under a unique project name, scoped to this run, in
#     dry run. Prometheus scrapes gestor, the log service, Alertmanager and
#     itself over the compose network, every rule evaluates, nothing fires,
#     records reach the log service with the generated token. The drill:
#     `stop gestor` -> GestorDown reaches the log service through
#     Alertmanager, `start gestor` -> its resolution does. Meanwhile a second
#     project whose gestor image never becomes healthy: Prometheus and
#     Alertmanager start all the same and GestorDown reaches that project's
#     log service. `down -v` afterwards.
#
# Grafana is not started (no package, no registry): its dashboards are checked
# by steps 1 and 2. Everything this suite creates carries the run's scope
# label or project names and is removed on exit.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly DOCKER=/usr/bin/docker
readonly STRESS_IMAGE="${STRESS_IMAGE:-gestor/stress:latest}"
readonly PROMETHEUS_STANDIN="${PROMETHEUS_STANDIN:-gestor/prometheus-debian:latest}"
readonly ALERTMANAGER_STANDIN="${ALERTMANAGER_STANDIN:-gestor/alertmanager-debian:latest}"
readonly GESTOR_BIN="${GESTOR_BIN:-${REPO_ROOT}/target/release/gestor}"
readonly SUITE="${REPO_ROOT}/tests/stack"
readonly CHECKER="${SUITE}/check_dashboards.py"
readonly CONFIG_CHECKER="${SUITE}/check_config.py"
readonly VENV="${SUITE}/.venv"
readonly INTERVAL=2          # gestor's cycle and the scrape interval here, seconds
readonly PER_TYPE=2          # stress containers started per type
readonly TYPES=(cpu ram io disk)
# How long an alert may take to reach the log service, seconds: GestorDown's
# `for: 1m`, a 10 s scrape and evaluation, Alertmanager's 10 s group_wait
# (firing) or its 1 min group_interval (resolved), and a margin for this
# shared machine.
readonly ALERT_BOUND=150
RULES="$(grep -c '^ *- alert:' "${REPO_ROOT}/prometheus/rules.yml")"
readonly RULES
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
readonly RUN_ID
readonly SCOPE="stack-${RUN_ID}"
readonly PROJECT="gestorstack${RUN_ID}"
readonly SICK_PROJECT="gestorsick${RUN_ID}"
readonly TEST_TAG="stack-${RUN_ID}"
readonly SICK_IMAGE="gestor/gestor:${TEST_TAG}-unhealthy"

# The name gestor's records and series carry in the compose stack: this
# machine's (stack-init reads the host's /etc/hostname).
MACHINE_HOST="$(head -n 1 /etc/hostname)"
readonly MACHINE_HOST
# The people receivers of the drill's Alertmanager, filled in once the sinks
# listen (start_sinks): compose settings, KEY=value.
ALERT_ENV=()
SINKS=""
declare -A READ_TOKENS=()
EXTRA_ENV=()

WORK=""
PROM_PORT=""
COMPOSE=()
PIDS=()
SICK_UP_RC=""
SICK_STARTED_EPOCH=0

readonly PROG="test-stack"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"
log() { printf 'test-stack: [%3d s] %s\n' "${SECONDS}" "$*"; }

# pass, fail, check and the PASSED/FAILED counts.
# shellcheck source-path=SCRIPTDIR source=../lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"

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
    touch "${WORK}/stack.env"
    local project
    for project in "${PROJECT}" "${SICK_PROJECT}" "${PROJECT}x"; do
      project_compose "${project}" down -v --remove-orphans >/dev/null 2>&1 || true
    done
    if [[ -f "${WORK}/clone/docker-compose.yml" ]]; then
      (cd "${WORK}/clone" && compose_env "${COMPOSE[@]}" -p "${PROJECT}c" down -v \
        --remove-orphans >/dev/null 2>&1) || true
    fi
  fi
  local scope ids
  for scope in "${SCOPE}" "${SCOPE}-compose"; do
    ids="$(scoped_ids "${scope}" 2>/dev/null || true)"
    if [[ -n "${ids}" ]]; then
      # shellcheck disable=SC2086 # one id per word
      "${DOCKER}" rm -f ${ids} >/dev/null 2>&1 || true
    fi
  done
  "${DOCKER}" rmi "${SICK_IMAGE}" "gestor/gestor:${TEST_TAG}" "gestor/logger:${TEST_TAG}" \
    >/dev/null 2>&1 || true
  if [[ -n "${WORK}" ]]; then
    rm -rf "${WORK}"
  fi
}

# promtool, prometheus, amtool, python3 with venv and yaml, curl, and a compose.
install_missing() {
  local -a packages=(prometheus prometheus-alertmanager python3 python3-venv python3-yaml curl)
  if ! command -v docker-compose >/dev/null 2>&1 \
    && ! "${DOCKER}" compose version >/dev/null 2>&1; then
    packages+=(docker-compose)
  fi
  apt_install_missing "${packages[@]}"
}

# tests/stack/.venv with the pinned requirements (Grafana's Foundation SDK);
# made again only when requirements.txt changes.
ensure_venv() {
  "${REPO_ROOT}/scripts/ensure-venv.sh" "${VENV}" "${SUITE}/requirements.txt"
}

# The compose command: v2 when the Docker CLI has it, else docker-compose 1.x.
pick_compose() {
  if "${DOCKER}" compose version >/dev/null 2>&1; then
    COMPOSE=("${DOCKER}" compose)
  else
    COMPOSE=(docker-compose)
  fi
}

# Runs a command with this run's images, ports (Docker picks them), scope
# and env file, in dry run.
compose_env() {
  GESTOR_IMAGE="${GESTOR_TEST_IMAGE:-gestor/gestor:${TEST_TAG}}" \
    LOGGER_IMAGE="gestor/logger:${TEST_TAG}" \
    PROMETHEUS_IMAGE="${PROMETHEUS_STANDIN}" \
    ALERTMANAGER_IMAGE="${ALERTMANAGER_STANDIN}" \
    GRAFANA_IMAGE="grafana/grafana:11.2.2" \
    STACK_BIND=127.0.0.1 \
    GESTOR_PORT=0 \
    LOGGER_PORT=0 \
    PROMETHEUS_PORT=0 \
    ALERTMANAGER_PORT=0 \
    GRAFANA_PORT=0 \
    GESTOR_ONLY_LABEL="gestor.scope=${SCOPE}-compose" \
    GESTOR_DRY_RUN=true \
    GESTOR_INTERVAL="${INTERVAL}" \
    STACK_ENV_FILE="${WORK}/stack.env" \
    "$@"
}

# compose on project $1, with the env file run-stack.sh wrote.
project_compose() {
  local project="$1"
  shift
  compose_env env "${EXTRA_ENV[@]}" "${COMPOSE[@]}" --env-file "${WORK}/stack.env" \
    -f "${REPO_ROOT}/docker-compose.yml" -p "${project}" "$@"
}

# The drill's project, with the sinks as its e-mail, chat and heartbeat
# (project_compose sees this local: bash scopes dynamically).
stack_compose() {
  local -a EXTRA_ENV=("${ALERT_ENV[@]}")
  project_compose "${PROJECT}" "$@"
}

sick_compose() {
  GESTOR_TEST_IMAGE="${SICK_IMAGE}" project_compose "${SICK_PROJECT}" "$@"
}

# --- static checks -----------------------------------------------------------

# alertmanager/render.sh with every receiver configured (the SMTP password
# from a file, as a Swarm secret gives it) into $1, and with none into $2.
render_alertmanager() {
  printf 'secret"pass\\word\n' >"${WORK}/smtp-password"
  env -i PATH="${PATH}" ALERT_EMAIL_TO=oncall@example.org,lead@example.org \
    ALERT_EMAIL_FROM=gestor@example.org ALERT_SMTP_SMARTHOST=smtp.example.org:587 \
    ALERT_SMTP_USERNAME=gestor ALERT_SMTP_PASSWORD_FILE="${WORK}/smtp-password" \
    ALERT_CHAT_WEBHOOK_URL=https://chat.example.org/hooks/abc \
    ALERT_WATCHDOG_URL=https://hc-ping.example.org/uuid \
    sh "${REPO_ROOT}/alertmanager/render.sh" >"$1" 2>"$1.err" || { cat "$1.err"; return 1; }
  [[ ! -s "$1.err" ]] || { echo "a note with every receiver set:"; cat "$1.err"; return 1; }
  env -i PATH="${PATH}" sh "${REPO_ROOT}/alertmanager/render.sh" >"$2" 2>"$2.err" \
    || { cat "$2.err"; return 1; }
  # None configured: it says so, once.
  [[ "$(grep -c 'not configured: e-mail chat watchdog' "$2.err")" == 1 ]] \
    || { echo "no single note of what is not configured:"; cat "$2.err"; return 1; }
}

# Half an e-mail setup, or a bad value, is refused with what is wrong.
render_refuses_bad_input() {
  local out
  if out="$(env -i PATH="${PATH}" ALERT_EMAIL_TO=a@example.org \
    sh "${REPO_ROOT}/alertmanager/render.sh" 2>&1 >/dev/null)"; then
    echo "half an e-mail setup was accepted"
    return 1
  fi
  grep -q 'ALERT_EMAIL_FROM is not set' <<<"${out}" || { echo "${out}"; return 1; }
  if out="$(env -i PATH="${PATH}" ALERT_SMTP_REQUIRE_TLS=maybe \
    sh "${REPO_ROOT}/alertmanager/render.sh" 2>&1 >/dev/null)"; then
    echo "ALERT_SMTP_REQUIRE_TLS=maybe was accepted"
    return 1
  fi
  echo "${out}"
}

# Where each alert of rules.yml goes (amtool's receivers for its labels):
# Watchdog to the heartbeat only; every other alert to the log service;
# critical ones also by e-mail, critical and warning to chat.
every_alert_routed() {
  local config="$1" name severity got want
  while read -r name severity; do
    got="$(amtool config routes test --config.file="${config}" \
      alertname="${name}" severity="${severity}" host=node-1 2>/dev/null)"
    case "${name}/${severity}" in
      Watchdog/*) want=watchdog ;;
      */critical) want=log-service,email,chat ;;
      */warning) want=log-service,chat ;;
      *) want=log-service ;;
    esac
    if [[ "${got}" != "${want}" ]]; then
      echo "${name} (${severity}): routed to '${got}', want '${want}'"
      return 1
    fi
  done < <(python3 "${CONFIG_CHECKER}" alert-names "${REPO_ROOT}/prometheus/rules.yml")
  echo "${RULES} alerts routed by severity (Watchdog to its own receiver)"
}

# docker-compose.yml needs nothing first: with no env file and no variable
# set, `config` succeeds, and no secret has a value in it (secrets are files
# stack-init writes; their overrides default to empty).
compose_needs_no_secret() {
  local config
  config="$(cd "${WORK}" && env -i PATH="${PATH}" HOME="${HOME}" "${COMPOSE[@]}" \
    -f "${REPO_ROOT}/docker-compose.yml" --project-directory "${REPO_ROOT}" config)" || return 1
  python3 "${CONFIG_CHECKER}" secrets <<<"${config}"
}

# With STACK_BIND=0.0.0.0, only Grafana and the live page leave loopback.
only_grafana_and_live_page_leave_loopback() {
  local published service address port wide
  published="$(env STACK_BIND=0.0.0.0 \
    "${COMPOSE[@]}" -f "${REPO_ROOT}/docker-compose.yml" config \
    | python3 "${CONFIG_CHECKER}" published)"
  printf '%s\n' "${published}"
  wide="$(while read -r service address port; do
    [[ "${address}" == 127.0.0.1 ]] || printf '%s\n' "${service}"
  done <<<"${published}" | sort | tr '\n' ' ')"
  [[ "${wide}" == "grafana logger " ]] || { echo "beyond loopback: ${wide}"; return 1; }
  [[ "$(wc -l <<<"${published}")" == 5 ]]
}

# Monitoring must not wait for the health of what it monitors.
no_service_healthy() {
  ! grep -n 'service_healthy' "${REPO_ROOT}/docker-compose.yml"
}

# run-stack.sh refuses Grafana's default password (from the environment or
# the env file) before it builds or starts anything; so does stack-init.
admin_password_refused() {
  local out rc=0 how
  for how in environment file; do
    rc=0
    if [[ "${how}" == file ]]; then
      printf 'GRAFANA_ADMIN_PASSWORD=admin\n' >"${WORK}/admin.env"
      out="$(compose_env env -u GRAFANA_ADMIN_PASSWORD STACK_ENV_FILE="${WORK}/admin.env" \
        COMPOSE_PROJECT_NAME="${PROJECT}x" "${REPO_ROOT}/scripts/run-stack.sh" 2>&1)" || rc=$?
    else
      out="$(compose_env env GRAFANA_ADMIN_PASSWORD=admin COMPOSE_PROJECT_NAME="${PROJECT}x" \
        STACK_ENV_FILE="${WORK}/none.env" "${REPO_ROOT}/scripts/run-stack.sh" 2>&1)" || rc=$?
    fi
    if ((rc == 0)) || ! grep -q 'refusing to start' <<<"${out}"; then
      printf 'admin in the %s: exit %d\n%s\n' "${how}" "${rc}" "${out}"
      return 1
    fi
    if [[ -n "$("${DOCKER}" ps -aq --filter "label=com.docker.compose.project=${PROJECT}x")" ]]; then
      echo "containers were started"
      return 1
    fi
  done
  grep -m1 'refusing' <<<"${out}"
  # stack-init itself, for `docker compose up` run by hand.
  rc=0
  out="$(env -i PATH="${PATH}" GRAFANA_ADMIN_PASSWORD=admin STACK_HOSTNAME=x \
    sh "${REPO_ROOT}/images/stack-init/init.sh" 2>&1)" || rc=$?
  if ((rc == 0)) || ! grep -q "Grafana's default" <<<"${out}"; then
    echo "stack-init: ${out}"
    return 1
  fi
  echo "${out}"
}

static_checks() {
  log "static checks"
  check "promtool check config prometheus.yml" \
    promtool check config "${REPO_ROOT}/prometheus.yml"
  check "promtool check rules prometheus/rules.yml" \
    promtool check rules "${REPO_ROOT}/prometheus/rules.yml"
  check "promtool test rules prometheus/tests/rules_test.yml" \
    promtool test rules "${REPO_ROOT}/prometheus/tests/rules_test.yml"
  check "rules_test.yml: each of the ${RULES} alerts has a firing and a quiet case" \
    python3 "${CONFIG_CHECKER}" rules-tested "${REPO_ROOT}/prometheus/rules.yml" \
    "${REPO_ROOT}/prometheus/tests/rules_test.yml"
  check_shown "alertmanager/render.sh: renders with every receiver set, and with none (said once)" \
    render_alertmanager "${WORK}/am-all.yml" "${WORK}/am-none.yml"
  check "amtool check-config: the config with every receiver" \
    amtool check-config "${WORK}/am-all.yml"
  check "amtool check-config: the config with no receiver configured" \
    amtool check-config "${WORK}/am-none.yml"
  check_shown "alertmanager/render.sh: half an e-mail setup or a bad value is refused, saying what" \
    render_refuses_bad_input
  check_shown "alertmanager: every alert of rules.yml routed by severity (amtool config routes test)" \
    every_alert_routed "${WORK}/am-all.yml"
  check "dashboards: valid JSON, ids, datasource uid, \$host everywhere, nothing clipped or unbounded" \
    python3 "${CHECKER}" static --dashboards "${REPO_ROOT}/grafana/dashboards" \
    --datasources "${REPO_ROOT}/grafana/provisioning/datasources"
  check_shown "dashboards: valid against Grafana's schema (grafana-foundation-sdk, Grafana 11.2)" \
    "${VENV}/bin/python" "${SUITE}/check_schema.py" "${REPO_ROOT}"/grafana/dashboards/*.json
  check_shown "schema check: catches each known-bad dashboard" \
    "${VENV}/bin/python" "${SUITE}/check_schema.py" --self-test \
    "${REPO_ROOT}/grafana/dashboards/gestor.json"
  check "docker-compose.yml: ${COMPOSE[*]} config" \
    "${COMPOSE[@]}" -f "${REPO_ROOT}/docker-compose.yml" config -q
  if command -v docker-compose >/dev/null 2>&1 && [[ "${COMPOSE[0]}" != docker-compose ]]; then
    check "docker-compose.yml: docker-compose (1.x) config" \
      docker-compose -f "${REPO_ROOT}/docker-compose.yml" config -q
  fi
  check "docker-compose.yml: no top-level name or version key" \
    bash -c "! grep -Eq '^(name|version):' '${REPO_ROOT}/docker-compose.yml'"
  check "docker-compose.yml: no depends_on waits for service_healthy" no_service_healthy
  check_shown "docker-compose.yml: with STACK_BIND=0.0.0.0 only Grafana and the live page leave loopback" \
    only_grafana_and_live_page_leave_loopback
  check_shown "docker-compose.yml: config needs no env file and holds no secret (files only), every service's log rotated" \
    compose_needs_no_secret
  check_shown "Grafana's default password (environment or env file) is refused by run-stack.sh and stack-init, nothing started" \
    admin_password_refused
}

# --- the live loop -------------------------------------------------------------

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

# Starts Prometheus on a port of its choosing scraping gestor at $1 as host
# $3; sets PROM_PORT.
start_prometheus() {
  local target="$1" dir="$2" host="$3"
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
        labels:
          host: "${host}"
EOF
  prometheus --config.file="${dir}/prometheus.yml" --storage.tsdb.path="${dir}/tsdb" \
    --web.listen-address=127.0.0.1:0 >"${dir}/prometheus.log" 2>&1 &
  PIDS+=("$!")
  wait_for 30 "Prometheus to log its port" prometheus_port "${dir}/prometheus.log" || return 1
  PROM_PORT="$(prometheus_port "${dir}/prometheus.log")"
  wait_for 30 "Prometheus ready" curl -fsS "http://127.0.0.1:${PROM_PORT}/-/ready"
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

prom_equals() {
  local value
  value="$(prom_value "$1" "$2")"
  echo "$2 = ${value:-nothing} (want $3)"
  [[ -n "${value}" ]] && awk -v v="${value}" -v want="$3" 'BEGIN { exit !(v == want) }'
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

# True once the last minute boundary (where Grafana aligns a panel with a
# 1-minute interval) lies $2 seconds after the epoch second $1: the kills
# panel's last bar then covers scrapes of gestor.
minute_boundary_after() {
  local now
  now="$(date +%s)"
  ((now / 60 * 60 >= $1 + $2))
}

live_loop() {
  log "live loop: ${#TYPES[@]} types x ${PER_TYPE} stress containers, scope ${SCOPE}"
  if [[ ! -x "${GESTOR_BIN}" ]]; then
    fail "gestor binary ${GESTOR_BIN} is missing (cargo build --release)"
    return 0
  fi
  local type i gestor_port dead prom started started_epoch
  for type in "${TYPES[@]}"; do
    for ((i = 0; i < PER_TYPE; i++)); do
      start_stress "${type}" "${SCOPE}" >/dev/null
    done
  done
  # Nothing listens at the log service's URL: records queue up, retries count.
  dead="$(dead_url)" || { fail "a loopback URL that refuses connections"; return 0; }
  started="${SECONDS}"
  started_epoch="$(date +%s)"
  "${GESTOR_BIN}" run --listen 127.0.0.1:0 --ready-file "${WORK}/gestor.ready" \
    --only-label "gestor.scope=${SCOPE}" \
    --interval "${INTERVAL}" --min-per-type 1 --dry-run=false --stop-timeout 1 \
    --sysinfo "${WORK}/no-module" --procfs /proc \
    --logger-url "${dead}" --create-logger=false \
    --spool-dir "${WORK}/spool" >"${WORK}/gestor.log" 2>&1 &
  PIDS+=("$!")
  if ! wait_for 20 "gestor's ready file" ready_port "${WORK}/gestor.ready"; then
    fail "gestor listens and writes its ready file"
    tail -n 20 "${WORK}/gestor.log" | sed 's/^/    /'
    return 0
  fi
  gestor_port="$(ready_port "${WORK}/gestor.ready")"
  if ! wait_for 20 "gestor's /metrics" curl -fsS "http://127.0.0.1:${gestor_port}/metrics"; then
    fail "gestor answers /metrics on 127.0.0.1:${gestor_port}"
    tail -n 20 "${WORK}/gestor.log" | sed 's/^/    /'
    return 0
  fi
  pass "gestor answers /metrics on 127.0.0.1:${gestor_port}"
  if ! start_prometheus "127.0.0.1:${gestor_port}" "${WORK}/prom-live" "live-${RUN_ID}"; then
    fail "prometheus ready on 127.0.0.1:${PROM_PORT:-?}"
    tail -n 20 "${WORK}/prom-live/prometheus.log" | sed 's/^/    /'
    return 0
  fi
  prom="http://127.0.0.1:${PROM_PORT}"
  local kills=$((${#TYPES[@]} * (PER_TYPE - 1))) killed_at killed_epoch
  if wait_for 90 "${kills} kills" prom_at_least "${prom}" 'sum(gestor_kills_total)' "${kills}"; then
    pass "gestor killed the ${kills} surplus containers (Prometheus: sum(gestor_kills_total))"
  else
    fail "gestor killed the ${kills} surplus containers: sum(gestor_kills_total) = $(prom_value "${prom}" 'sum(gestor_kills_total)')"
    tail -n 20 "${WORK}/gestor.log" | sed 's/^/    /'
  fi
  # A full rate() window ($__rate_interval = 4 scrapes) after the last kill.
  killed_at="${SECONDS}"
  killed_epoch="$(date +%s)"
  wait_for 60 "5 scrapes after the last kill" scraped_since "${prom}" "${killed_at}" 5 \
    || fail "Prometheus scrapes gestor 5 times after the last kill"
  check "the kill counter equals the containers Docker no longer has (${kills})" \
    kills_match_docker "${prom}" "${SCOPE}" "${kills}"
  check "one container per type runs (docker), and the dashboards' count agrees" \
    running_matches_docker "${prom}" "${SCOPE}"
  # The kills panels have a 1-minute interval: Grafana aligns their range to
  # whole minutes, so their newest bar ends at the last minute boundary, and
  # increase() over it needs two scrapes of the kill counter before it. The
  # counter exists from the first kill on, which a loaded host may delay well
  # past gestor's start: wait for a boundary two scrapes after the kills were
  # seen, not only after gestor's first scrapes.
  wait_for 75 "a minute boundary after the first scrapes" \
    minute_boundary_after "${started_epoch}" $((4 * INTERVAL)) \
    || fail "a minute boundary passed after gestor's first scrapes"
  wait_for 75 "a minute boundary after the kills" \
    minute_boundary_after "${killed_epoch}" $((2 * INTERVAL)) \
    || fail "a minute boundary passed two scrapes after the kills"
  check_shown "every dashboard panel returns data from the real Prometheus" \
    python3 "${CHECKER}" live --dashboards "${REPO_ROOT}/grafana/dashboards" \
    --prometheus "${prom}" --window "$((SECONDS - started))" --step "${INTERVAL}" \
    --scrape-interval "${INTERVAL}"
  check_shown "alert rules load and evaluate without errors on gestor's real series" \
    python3 "${CHECKER}" rules --prometheus "${prom}" --min "${RULES}"
}

# --- compose -------------------------------------------------------------------

is_running() {
  [[ "$("${DOCKER}" inspect -f '{{.State.Running}}' "$1")" == true ]]
}

health_of() {
  "${DOCKER}" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"
}

all_healthy() {
  local id
  for id in "$@"; do
    [[ "$(health_of "${id}")" == healthy ]] || return 1
  done
}

is_unhealthy() {
  [[ "$(health_of "$1")" == unhealthy ]]
}

# gestor's image as run-stack.sh left it: the Dockerfile's runtime-base
# (non-root user, healthcheck) with the binary in it.
image_is_sound() {
  local image="gestor/gestor:${TEST_TAG}"
  [[ "$("${DOCKER}" inspect -f '{{.Config.User}}' "${image}")" == gestor ]] \
    && "${DOCKER}" inspect -f '{{json .Config.Healthcheck.Test}}' "${image}" | grep -q healthcheck \
    && "${DOCKER}" run --rm --entrypoint /usr/local/bin/gestor "${image}" --version
}

# A secret of project $1's stack-secrets volume, read through stack-init.
project_secret() {
  local project="$1"
  shift
  project_compose "${project}" run --rm --no-deps -T --entrypoint cat stack-init \
    "/run/gestor-stack/secrets/$1" 2>/dev/null
}

# stack-init generated three distinct random secrets and a second run keeps
# them; run-stack.sh wrote no env file.
secrets_generated() {
  local name value before="" after=""
  for name in logger-token logger-read-token grafana-admin-password; do
    value="$(project_secret "$1" "${name}")"
    [[ "${value}" =~ ^[0-9a-f]{64}$ ]] || { echo "${name}: '${value}'"; return 1; }
    before+="${value} "
  done
  [[ "$(tr ' ' '\n' <<<"${before}" | sort -u | grep -c .)" == 3 ]] || { echo "not distinct"; return 1; }
  project_compose "$1" run --rm --no-deps -T stack-init >/dev/null 2>&1 || { echo "rerun failed"; return 1; }
  for name in logger-token logger-read-token grafana-admin-password; do
    after+="$(project_secret "$1" "${name}") "
  done
  [[ "${before}" == "${after}" ]] || { echo "a second stack-init changed them"; return 1; }
  [[ ! -s "${WORK}/stack.env" ]] || { echo "run-stack.sh wrote ${WORK}/stack.env"; return 1; }
  echo "3 secrets of 32 random bytes, kept across runs; no env file written"
}

writes_refused() {
  local code path
  for path in logs alerts; do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      --data '[]' "$1/${path}")"
    echo "POST /${path} without a token: ${code}"
    [[ "${code}" == 401 ]] || return 1
  done
}

# The published ports of gestor, Prometheus and Alertmanager are on loopback.
loopback_only() {
  local service port addr
  for service in gestor:9797 prometheus:9090 alertmanager:9093; do
    port="${service#*:}"
    addr="$(stack_compose port "${service%%:*}" "${port}")"
    echo "${service%%:*}: ${addr}"
    [[ "${addr}" == 127.0.0.1:* ]] || return 1
  done
}

# Every target of the compose Prometheus is up: gestor (host "gestor"), the
# log service, Alertmanager and Prometheus itself, found over the compose
# network.
all_targets_up() {
  local job
  for job in gestor logger alertmanager prometheus; do
    prom_equals "$1" "sum(up{job=\"${job}\"})" 1 || return 1
  done
  prom_equals "$1" "count(up{job=\"gestor\", host=\"${MACHINE_HOST}\"} == 1)" 1
}

# Every rule loads and evaluates; none fires.
rules_quiet() {
  local firing
  python3 "${CHECKER}" rules --prometheus "$1" --min "${RULES}" || return 1
  firing="$(python3 "${CHECKER}" query --prometheus "$1" 'ALERTS{alertname!="Watchdog"}')"
  echo "alerts pending or firing: ${firing:-none}"
  [[ -z "${firing}" ]]
}

# GET $2 of the log service at $1 with its read token (READ_TOKENS).
logger_get() {
  curl -fsS -H "Authorization: Bearer ${READ_TOKENS[$1]:-none}" "$1$2"
}

# The alert records of the log service at $1, one per line:
# "status alertname host fingerprint".
alert_records() {
  logger_get "$1" "/logs?event=alert&limit=1000" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["items"]:
    a = r.get("alert") or {}
    print(a.get("status"), a.get("name"), r.get("host") or "-", a.get("fingerprint"))
'
}

# True once the log service at $1 holds an alert record "$2 $3 $4" (status,
# alert name, host), of fingerprint $5 when given.
alert_arrived() {
  alert_records "$1" | grep -q "^$2 $3 $4 ${5:-}"
}

fingerprint_of() {
  alert_records "$1" | awk -v s="$2" -v n="$3" '$1 == s && $2 == n { print $4; exit }'
}

no_alert_firing_in_stats() {
  local firing
  firing="$(logger_get "$1" /stats | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["alerts_firing"]))')"
  echo "alerts firing on the live page: ${firing}"
  [[ "${firing}" == 0 ]]
}

# --- the alert sinks: where the drill's Alertmanager delivers ------------------

# The host's address on Docker's default bridge: containers reach it, the
# network outside does not.
bridge_address() {
  ip -4 -o addr show docker0 | awk '{ print $4 }' | cut -d/ -f1 | head -n 1
}

# An SMTP sink (aiosmtpd) and an HTTP sink (chat at /chat, the heartbeat at
# /watchdog), each on a port it picks and reports; sets ALERT_ENV.
start_sinks() {
  local address kind
  address="$(bridge_address)"
  [[ -n "${address}" ]] || { err "no docker0 address for the sinks"; return 1; }
  SINKS="${WORK}/sinks"
  mkdir -p "${SINKS}"
  for kind in smtp http; do
    "${VENV}/bin/python" "${SUITE}/sinks.py" "${kind}" "${address}" "${SINKS}/${kind}" \
      >"${SINKS}/${kind}.addr" 2>"${SINKS}/${kind}.log" &
    PIDS+=("$!")
  done
  for kind in smtp http; do
    wait_for 30 "the ${kind} sink's port" test -s "${SINKS}/${kind}.addr" || return 1
  done
  ALERT_ENV=(
    ALERT_EMAIL_TO=oncall@example.org
    ALERT_EMAIL_FROM=gestor@example.org
    "ALERT_SMTP_SMARTHOST=$(head -n 1 "${SINKS}/smtp.addr")"
    ALERT_SMTP_REQUIRE_TLS=false
    "ALERT_CHAT_WEBHOOK_URL=http://$(head -n 1 "${SINKS}/http.addr")/chat"
    "ALERT_WATCHDOG_URL=http://$(head -n 1 "${SINKS}/http.addr")/watchdog"
  )
  log "sinks: smtp $(head -n 1 "${SINKS}/smtp.addr"), http $(head -n 1 "${SINKS}/http.addr")"
}

# True once an e-mail in the SMTP sink says alert $1 is $2 (FIRING or
# RESOLVED: Alertmanager's subject) for host $3.
mail_arrived() {
  local file
  for file in "${SINKS}"/smtp/mail-*.eml; do
    [[ -f "${file}" ]] || continue
    grep -q "^Subject: \[$2[]:].*$1" "${file}" && grep -q "$3" "${file}" && return 0
  done
  return 1
}

# True once a chat message (Slack JSON) names alert $1 as $2 for host $3.
chat_arrived() {
  local file
  for file in "${SINKS}"/http/chat-*.json; do
    [[ -f "${file}" ]] || continue
    python3 - "$1" "$2" "$3" "${file}" <<'PY' && return 0
import json, sys
name, status, host, path = sys.argv[1:]
msg = json.load(open(path))
text = json.dumps(msg)
sys.exit(0 if f"[{status}" in text and name in text and host in text else 1)
PY
  done
  return 1
}

# Messages of kind $1 (chat, watchdog) naming $2; counts only.
sink_count() {
  grep -l -- "$2" "${SINKS}"/http/"$1"-*.json 2>/dev/null | wc -l
}

watchdog_beats() {
  local beats
  beats="$(sink_count watchdog '"alertname":"Watchdog"')"
  echo "Watchdog notifications at the heartbeat URL: ${beats}"
  ((beats >= $1))
}

# Alertmanager ($1) holds alert $2 for host $3, suppressed by an inhibition.
inhibited_in_alertmanager() {
  curl -fsS "$1/api/v2/alerts?filter=alertname%3D%22$2%22" | python3 -c '
import json, sys
host = sys.argv[1]
alerts = [a for a in json.load(sys.stdin) if a["labels"].get("host") == host]
for a in alerts:
    print(a["labels"]["alertname"], a["status"]["state"], a["status"]["inhibitedBy"])
sys.exit(0 if alerts and all(a["status"]["inhibitedBy"] for a in alerts) else 1)
' "$3"
}

# stop gestor -> GestorDown in the log service, by e-mail and in chat;
# GestorRecordsStopped fires in Prometheus for that host but is inhibited
# (no e-mail, no chat); start -> the resolution.
drill() {
  local prom="$1" logger="$2" am="$3" stopped started fingerprint
  log "drill: stop gestor"
  stack_compose stop gestor >/dev/null 2>&1
  stopped="${SECONDS}"
  if wait_for "${ALERT_BOUND}" "GestorDown firing" alert_arrived "${logger}" firing GestorDown "${MACHINE_HOST}"; then
    pass "drill: gestor stopped -> GestorDown (host ${MACHINE_HOST}) stored by the log service after $((SECONDS - stopped)) s (bound ${ALERT_BOUND} s)"
  else
    fail "drill: gestor stopped -> GestorDown reaches the log service within ${ALERT_BOUND} s"
    alert_records "${logger}" | sed 's/^/    /'
    stack_compose logs --tail 20 alertmanager 2>&1 | sed 's/^/    /'
    stack_compose start gestor >/dev/null 2>&1
    return 0
  fi
  # People get it after their own group_wait (30 s).
  if wait_for $((ALERT_BOUND + 30 - (SECONDS - stopped))) "GestorDown by e-mail" \
    mail_arrived GestorDown FIRING "${MACHINE_HOST}"; then
    pass "drill: GestorDown arrives by e-mail (SMTP sink) after $((SECONDS - stopped)) s"
  else
    fail "drill: GestorDown arrives by e-mail within $((ALERT_BOUND + 30)) s"
    stack_compose logs --tail 20 alertmanager 2>&1 | sed 's/^/    /'
  fi
  check "drill: GestorDown arrives in chat (Slack-compatible webhook at the HTTP sink)" \
    wait_for 30 "GestorDown in chat" chat_arrived GestorDown FIRING "${MACHINE_HOST}"
  # GestorRecordsStopped: 2 minutes without records, then its `for: 1m`.
  if wait_for 240 "GestorRecordsStopped firing in Prometheus" prom_at_least "${prom}" \
    "count(ALERTS{alertname=\"GestorRecordsStopped\", alertstate=\"firing\", host=\"${MACHINE_HOST}\"})" 1; then
    check_shown "drill: GestorRecordsStopped (firing in Prometheus) is inhibited by GestorDown in Alertmanager" \
      wait_for 30 "the inhibition" inhibited_in_alertmanager "${am}" GestorRecordsStopped "${MACHINE_HOST}"
    # Past the people's group_wait: a page would have gone out by now.
    sleep_past_group_wait
    if [[ "$(sink_count chat GestorRecordsStopped)" == 0 ]] && ! mail_arrived GestorRecordsStopped FIRING ""; then
      pass "drill: no GestorRecordsStopped page (e-mail or chat) for the host whose gestor is down"
    else
      fail "drill: GestorRecordsStopped was paged although GestorDown fires for that host"
    fi
  else
    fail "drill: GestorRecordsStopped fires in Prometheus for the stopped host within 240 s"
  fi
  fingerprint="$(fingerprint_of "${logger}" firing GestorDown)"
  log "drill: start gestor"
  stack_compose start gestor >/dev/null 2>&1
  started="${SECONDS}"
  if wait_for "${ALERT_BOUND}" "GestorDown resolved" \
    alert_arrived "${logger}" resolved GestorDown "${MACHINE_HOST}" "${fingerprint}"; then
    pass "drill: gestor started -> GestorDown resolved stored after $((SECONDS - started)) s (bound ${ALERT_BOUND} s)"
  else
    fail "drill: gestor started -> the resolution reaches the log service within ${ALERT_BOUND} s"
    alert_records "${logger}" | sed 's/^/    /'
  fi
  check "drill: the live page's 'alerts firing' is empty again" \
    wait_for 60 "no alert firing" no_alert_firing_in_stats "${logger}"
  check "drill: Alertmanager delivered to the log service, e-mail and chat, no failure (its own counters)" \
    wait_for 60 "Alertmanager's deliveries" prom_delivered "${prom}"
}

# The people's group_wait (30 s) and a scrape and evaluation (10 s each)
# after Prometheus first showed the alert firing: there is no event to wait
# for when the point is that nothing arrives.
sleep_past_group_wait() {
  sleep 50
}

# stop the log service -> GestorLoggerDown still arrives by e-mail.
logger_drill() {
  local stopped
  log "drill: stop the log service"
  stack_compose stop logger >/dev/null 2>&1
  stopped="${SECONDS}"
  if wait_for $((ALERT_BOUND + 30)) "GestorLoggerDown by e-mail" \
    mail_arrived GestorLoggerDown FIRING GestorLoggerDown; then
    pass "drill: log service stopped -> GestorLoggerDown arrives by e-mail after $((SECONDS - stopped)) s"
  else
    fail "drill: log service stopped -> GestorLoggerDown arrives by e-mail within $((ALERT_BOUND + 30)) s"
    stack_compose logs --tail 20 alertmanager 2>&1 | sed 's/^/    /'
  fi
  stack_compose start logger >/dev/null 2>&1
}

prom_delivered() {
  prom_at_least "$1" 'sum(alertmanager_notifications_total{integration="webhook"})' 2 \
    && prom_at_least "$1" 'sum(alertmanager_notifications_total{integration="email"})' 1 \
    && prom_at_least "$1" 'sum(alertmanager_notifications_total{integration="slack"})' 1 \
    && prom_equals "$1" 'sum(alertmanager_notifications_failed_total)' 0
}

# A second project whose gestor never gets healthy: in its image, gestor's
# binary is a script that sleeps (compose's entrypoint execs it with the
# `run` arguments) and passes only `healthcheck` to the real binary, so the
# HEALTHCHECK (`gestor healthcheck`, GET /healthz) and Prometheus' scrapes
# find nothing listening. Started at once, checked later.
start_sick_stack() {
  local dir="${WORK}/sick-image"
  mkdir -p "${dir}"
  cat >"${dir}/gestor" <<'EOS'
#!/bin/sh
[ "$1" = healthcheck ] && exec /usr/local/bin/gestor.real "$@"
exec sleep infinity
EOS
  cat >"${dir}/Dockerfile" <<EOS
FROM gestor/gestor:${TEST_TAG}
USER root
RUN mv /usr/local/bin/gestor /usr/local/bin/gestor.real
COPY gestor /usr/local/bin/gestor
RUN chmod 755 /usr/local/bin/gestor
USER gestor
EOS
  if ! "${DOCKER}" build -q -t "${SICK_IMAGE}" "${dir}" >"${WORK}/sick-build.log" 2>&1; then
    fail "build ${SICK_IMAGE}"
    sed 's/^/    /' "${WORK}/sick-build.log"
    return 0
  fi
  log "compose: project ${SICK_PROJECT} with a gestor that never becomes healthy"
  SICK_STARTED_EPOCH="$(date +%s)"
  SICK_UP_RC=0
  sick_compose up -d gestor logger prometheus alertmanager >"${WORK}/sick-up.log" 2>&1 \
    || SICK_UP_RC=$?
}

sick_stack_checks() {
  local gestor prom_id am_id logger
  if [[ -z "${SICK_UP_RC}" ]]; then
    return 0
  fi
  if ((SICK_UP_RC == 0)); then
    pass "unhealthy gestor: compose up -d starts the stack (exit 0)"
  else
    fail "unhealthy gestor: compose up -d starts the stack (exit ${SICK_UP_RC})"
    sed 's/^/    /' "${WORK}/sick-up.log"
  fi
  gestor="$(sick_compose ps -q gestor)"
  prom_id="$(sick_compose ps -q prometheus)"
  am_id="$(sick_compose ps -q alertmanager)"
  if [[ -n "${gestor}" ]] && wait_for 90 "gestor unhealthy" is_unhealthy "${gestor}"; then
    pass "unhealthy gestor: gestor's container is unhealthy"
  else
    fail "unhealthy gestor: gestor's container is unhealthy (${gestor:+$(health_of "${gestor}")})"
  fi
  if [[ -n "${prom_id}" && -n "${am_id}" ]] && wait_for 60 "Prometheus and Alertmanager healthy" \
    all_healthy "${prom_id}" "${am_id}"; then
    pass "unhealthy gestor: Prometheus and Alertmanager run and are healthy all the same"
  else
    fail "unhealthy gestor: Prometheus and Alertmanager run (prometheus: ${prom_id:-not created}, alertmanager: ${am_id:-not created})"
    return 0
  fi
  logger="http://$(sick_compose port logger 8000)"
  READ_TOKENS["${logger}"]="$(project_secret "${SICK_PROJECT}" logger-read-token)"
  check_shown "no receivers configured: Alertmanager runs and says so once" said_once_unconfigured
  local left=$((SICK_STARTED_EPOCH + ALERT_BOUND - $(date +%s))) took
  if ! wait_for "$((left > 0 ? left : 1))" "GestorDown firing" \
    alert_arrived "${logger}" firing GestorDown "${MACHINE_HOST}"; then
    fail "unhealthy gestor: GestorDown reaches the log service within ${ALERT_BOUND} s of up"
    alert_records "${logger}" | sed 's/^/    /'
    return 0
  fi
  # When it arrived: the log service's own (timestamped) access log line.
  took="$(first_alert_post "$(sick_compose ps -q logger)")"
  took=$((took - SICK_STARTED_EPOCH))
  if ((took <= ALERT_BOUND)); then
    pass "unhealthy gestor: GestorDown fired and reached the log service ${took} s after up (bound ${ALERT_BOUND} s)"
  else
    fail "unhealthy gestor: GestorDown reached the log service ${took} s after up (bound ${ALERT_BOUND} s)"
  fi
}

said_once_unconfigured() {
  local notes
  notes="$(sick_compose logs alertmanager 2>&1 | grep -c 'not configured: e-mail chat watchdog')"
  sick_compose logs alertmanager 2>&1 | grep -m 1 'not configured' | sed 's/.*| //'
  [[ "${notes}" == 1 ]]
}

# The epoch second of the first POST /alerts that container $1's log service
# answered with 200 (Docker's timestamp of uvicorn's access log line).
first_alert_post() {
  local stamp
  stamp="$("${DOCKER}" logs -t "$1" 2>&1 | grep -m 1 '"POST /alerts HTTP/1.1" 200' | cut -d' ' -f1)"
  date -d "${stamp}" +%s
}

# `docker compose up -d` in a fresh clone of this branch, no env file and no
# secret set anywhere: stack-init makes them, gestor and the log service get
# healthy, records flow with the generated token, reads and writes without
# it are refused. (This run's images, ports, scope and dry run come from the
# environment, as everywhere in this suite.)
clean_clone_up() {
  local clone="${WORK}/clone" branch ids=() service logger code token
  branch="$(git -C "${REPO_ROOT}" rev-parse --abbrev-ref HEAD)"
  git clone -q --branch "${branch}" "file://${REPO_ROOT}" "${clone}" || return 1
  [[ ! -e "${clone}/.env" ]] || { echo "the clone has a .env"; return 1; }
  if ! (cd "${clone}" && compose_env env -u LOGGER_TOKEN -u LOGGER_READ_TOKEN \
    -u GRAFANA_ADMIN_PASSWORD "${COMPOSE[@]}" -p "${PROJECT}c" up -d gestor logger) \
    >"${WORK}/clone-up.log" 2>&1; then
    sed 's/^/    /' "${WORK}/clone-up.log"
    return 1
  fi
  for service in gestor logger; do
    ids+=("$(cd "${clone}" && compose_env "${COMPOSE[@]}" -p "${PROJECT}c" ps -q "${service}")")
  done
  wait_for 120 "gestor and the log service healthy" all_healthy "${ids[@]}" || return 1
  echo "gestor and the log service healthy"
  logger="http://$(cd "${clone}" && compose_env "${COMPOSE[@]}" -p "${PROJECT}c" port logger 8000)"
  token="$(cd "${clone}" && compose_env "${COMPOSE[@]}" -p "${PROJECT}c" run --rm --no-deps -T \
    --entrypoint cat stack-init /run/gestor-stack/secrets/logger-read-token 2>/dev/null)"
  [[ "${token}" =~ ^[0-9a-f]{64}$ ]] || { echo "read token '${token}'"; return 1; }
  READ_TOKENS["${logger}"]="${token}"
  wait_for 60 "gestor's records in the log service" records_from "${logger}" "${MACHINE_HOST}" || return 1
  echo "records of host ${MACHINE_HOST} stored (gestor sent the generated write token)"
  writes_refused "${logger}" || return 1
  code="$(curl -s -o /dev/null -w '%{http_code}' "${logger}/logs?limit=1")"
  echo "GET /logs without the read token: ${code}"
  (cd "${clone}" && compose_env "${COMPOSE[@]}" -p "${PROJECT}c" down -v) >/dev/null 2>&1
}

# The log service at $1 holds a record of host $2.
records_from() {
  logger_get "$1" "/logs?limit=1&host=$2" | grep -q "\"host\":\"$2\""
}

# The user's one command, on this run's images, ports and scope, in dry run.
compose_stack() {
  log "compose: scripts/run-stack.sh, project ${PROJECT} (dry run, scope ${SCOPE}-compose)"
  if [[ ! -x "${GESTOR_BIN}" ]]; then
    fail "compose: gestor binary missing"
    return 0
  fi
  local ids logger prom am watched
  watched="$(start_stress cpu "${SCOPE}-compose")"
  if ! start_sinks; then
    fail "compose: the SMTP and HTTP sinks start"
    return 0
  fi
  # No registry here: run-stack.sh must fall back to the Dockerfile's prebuilt
  # target for gestor, build the logger from ./logger, find Grafana
  # unpullable and start the rest (Prometheus and Alertmanager from the
  # stand-in images).
  if ! compose_env env COMPOSE_PROJECT_NAME="${PROJECT}" "${ALERT_ENV[@]}" \
    "${REPO_ROOT}/scripts/run-stack.sh" >"${WORK}/run-stack.log" 2>&1; then
    fail "scripts/run-stack.sh brings the stack up"
    tail -n 40 "${WORK}/run-stack.log" | sed 's/^/    /'
    return 0
  fi
  grep -e '^run-stack.sh:' -e '^  ' "${WORK}/run-stack.log" | sed 's/^/    /' || true
  pass "scripts/run-stack.sh brings the stack up (offline: prebuilt gestor image, logger built, no Grafana)"
  start_sick_stack
  check "gestor image: runs as user gestor, has a HEALTHCHECK and the binary" image_is_sound
  check_shown "compose: stack-init generated random, distinct secrets (tokens, Grafana's password), kept on rerun" \
    secrets_generated "${PROJECT}"
  ids=()
  local service
  for service in gestor logger prometheus alertmanager; do
    ids+=("$(stack_compose ps -q "${service}")")
  done
  if wait_for 120 "the stack healthy" all_healthy "${ids[@]}"; then
    pass "compose: gestor, logger, Prometheus and Alertmanager become healthy"
  else
    fail "compose: all healthy (gestor $(health_of "${ids[0]}"), logger $(health_of "${ids[1]}"), prometheus $(health_of "${ids[2]}"), alertmanager $(health_of "${ids[3]}"))"
    stack_compose logs --tail 20 2>&1 | sed 's/^/    /'
    return 0
  fi
  check_shown "compose: gestor, Prometheus and Alertmanager are published on loopback only" loopback_only
  logger="http://$(stack_compose port logger 8000)"
  prom="http://$(stack_compose port prometheus 9090)"
  am="http://$(stack_compose port alertmanager 9093)"
  READ_TOKENS["${logger}"]="$(project_secret "${PROJECT}" logger-read-token)"
  check_shown "compose: Prometheus scrapes gestor (host ${MACHINE_HOST}), the log service, Alertmanager and itself" \
    wait_for 60 "every target up" all_targets_up "${prom}"
  check "compose: gestor reads the host's /proc at /host/proc (userspace source, host CPUs)" \
    wait_for 20 "the userspace source" prom_at_least "${prom}" \
    "gestor_snapshot_source{source=\"userspace\"} * on() gestor_host_cpus == $(nproc)" 1
  check "compose: gestor sees the processes of a container on the host (${watched})" \
    wait_for 30 "the container's memory series" \
      prom_at_least "${prom}" "gestor_container_memory_bytes{name=\"${watched}\"}" 1
  check "compose: gestor's records reach the log service with the generated token (host ${MACHINE_HOST}, this machine's name)" \
    wait_for 30 "records stored" prom_at_least "${prom}" \
    "gestor_logger_records_stored_total * on() group_left() gestor_logger_last_record_received_timestamp_seconds{host=\"${MACHINE_HOST}\"} > 0" 1
  check_shown "compose: the log service refuses a write without the token (401)" \
    writes_refused "${logger}"
  check_shown "compose: all ${RULES} rules evaluate on the stack's real series, none pending or firing" \
    wait_for 30 "every rule quiet" rules_quiet "${prom}"
  drill "${prom}" "${logger}" "${am}"
  logger_drill
  check_shown "drill: the Watchdog heartbeat arrived at its receiver at least twice" watchdog_beats 2
  check "drill: Watchdog goes to its receiver only (no e-mail, no chat)" \
    test "$(sink_count chat Watchdog)" == 0
  check "compose: dry run kept the scoped container" is_running "${watched}"
  sick_stack_checks
  check_shown "clean clone: docker compose up -d with no .env -> gestor and the log service healthy, no default secret" \
    clean_clone_up
  if stack_compose down -v >"${WORK}/compose-down.log" 2>&1 \
    && sick_compose down -v >>"${WORK}/compose-down.log" 2>&1 \
    && [[ -z "$("${DOCKER}" volume ls -q --filter "name=${PROJECT}_")" ]] \
    && [[ -z "$("${DOCKER}" volume ls -q --filter "name=${SICK_PROJECT}_")" ]]; then
    pass "compose: down -v removes the containers and the named volumes"
  else
    fail "compose: down -v removes the containers and the named volumes"
    sed 's/^/    /' "${WORK}/compose-down.log"
  fi
}

main() {
  local start="${SECONDS}"
  install_missing
  ensure_venv
  env STRESS_IMAGE="${STRESS_IMAGE}" PROMETHEUS_STANDIN="${PROMETHEUS_STANDIN}" \
    ALERTMANAGER_STANDIN="${ALERTMANAGER_STANDIN}" "${REPO_ROOT}/scripts/build-images.sh"
  pick_compose
  WORK="$(mktemp -d /tmp/gestor-stack.XXXXXX)"
  # The compose projects' env file: empty (no override; the stack makes its
  # own secrets), present because every compose command names it.
  touch "${WORK}/stack.env"
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
