#!/usr/bin/env bash
#
# The swarm suite (`make test-swarm`): gestor's fleet stack
# (deploy/swarm/stack.yml) on a real 3-node Docker Swarm made of
# Docker-in-Docker nodes (images/swarm-node) on this machine.
#
#  1. Static: promtool checks deploy/swarm/prometheus.yml with
#     prometheus/rules.yml and runs tests/swarm/rules_test.yml (the rules
#     with the fleet's labels); amtool checks deploy/swarm/alertmanager.yml;
#     `docker stack config` reads the stack file (when the Docker CLI here
#     has that command).
#  2. Three nodes on a network of their own; `swarm init` on the first, the
#     others join. The images (gestor's from target/release/gestor, the log
#     service's, the stress image, gestor/postgres, gestor/socket-proxy, and
#     images/swarm-prometheus standing in for prom/prometheus and
#     prom/alertmanager) reach the nodes by `docker save | docker load`.
#  3. deploy/swarm/deploy.sh, run on node 1 from a writable copy, must refuse
#     a monitoring node that is a worker; then it deploys the stack (with
#     tests/swarm/stack.test.yml for the images only; gestor at a 2 s cycle).
#     The overlays must be created encrypted; where IPsec cannot run (these
#     nested engines: the engine's error is printed), the stack is deployed
#     again with the setting removed from the copy. gestor must run on every
#     node, and the stack's Prometheus (basic auth) must have exactly the
#     three nodes as `up{job="gestor"} == 1`, found by dockerswarm_sd_configs
#     through the socket proxy alone.
#  4. Closed by default, asked from node 3: the log service's reads and
#     Prometheus' API refuse requests without their secret and answer with
#     it; Alertmanager, PostgreSQL and the socket proxy are not published;
#     Prometheus is not root and has no socket; the socket proxy answers a
#     GET of discovery's and refuses POST /containers/create.
#  5. The generator (cron/create_containers.sh --print-names) runs on each node;
#     each node must come down to exactly one running managed container per
#     type it created, stay there for two more cycles, and the log service
#     must hold one kill record per surplus container of that node, and cycle
#     records from all three hosts.
#  6. The log service on PostgreSQL (when the log service built here has
#     that engine; else one replica on SQLite, and this is skipped, saying
#     so): the one-shot migration completes, both replicas read one
#     database, and records keep arriving while one is killed (SIGKILL).
#  7. Drill: the third node's overlay traffic is cut (its records wait in its
#     gestor's spool), then its engine is stopped: its target must vanish
#     from discovery (no `up == 0` left to alert on), GestorHostGone naming
#     that node must fire and reach the stack's Alertmanager, and
#     GestorRecordsStopped must stay quiet for it (gone from discovery) once
#     its records are overdue, while the other two nodes go on. Its engine
#     started again (traffic restored), a new gestor task must run there, be
#     scraped again, and every record id that was in the spool must arrive at
#     the log service.
#  8. Redeploy: alertmanager.yml edited in the copy, deploy.sh again succeeds
#     and Alertmanager runs with the config named by the new digest.
#
# SWARM_KEEP=1 leaves the nodes running for a look (remove them by hand);
# SWARM_STORAGE_DRIVER=vfs runs the nodes on vfs instead of overlay2.
#
# Everything it creates carries the run's id (containers, network, images)
# and is removed on exit, pass or fail. Nothing runs on the host's engine but
# the three node containers (and one `docker run --rm` that looks into the log
# service's image): the swarm, its services and their ports live
# inside the nodes' own network namespaces, so the ports the stack publishes
# (9090, 8000) cannot collide with anything on this machine.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly DOCKER=/usr/bin/docker
readonly GESTOR_BIN="${GESTOR_BIN:-${REPO_ROOT}/target/release/gestor}"
readonly NODE_IMAGE=gestor/swarm-node:latest
readonly PROM_IMAGE=gestor/swarm-prometheus:latest
readonly STRESS_IMAGE=gestor/stress:latest
readonly POSTGRES_IMAGE=gestor/postgres:latest
readonly SOCKET_PROXY_IMAGE=gestor/socket-proxy:latest
readonly STACK=gestor
readonly NODES=3
readonly INTERVAL=2          # gestor's cycle here, seconds
readonly PER_NODE=8          # containers the generator creates on each node
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
readonly RUN_ID
readonly SCOPE="swarm-${RUN_ID}"
readonly NET="gestor-${SCOPE}"
readonly GESTOR_IMAGE="gestor/gestor:${SCOPE}"
# The log service from this checkout, under a name no other run shares.
readonly LOGGER_IMAGE="gestor/logger:${SCOPE}"
# deploy.sh runs on node 1 from a writable copy of the files it reads (the
# redeploy check edits one), and keeps the secrets' values there.
readonly DEPLOY_ROOT=/root/gestor
readonly CREDENTIALS=/root/.gestor/gestor
# The node's view of the spool volume (the stack names volumes STACK_NAME).
readonly SPOOL_DIR="/var/lib/docker/volumes/${STACK}_gestor-spool/_data"

WORK=""
NODE_NAMES=()   # containers on the host engine
HOSTS=()        # their hostnames: the swarm's node names, gestor's `host`
NODE_IPS=()
PROM=""         # http://<node 1>:9090
LOGS=""         # http://<node 1>:8000 (a log-service replica runs there)
LOGS2=""        # http://<node 2>:8000 (the other replica)
PROM_PASSWORD=""  # user admin, from deploy.sh's copy of the Swarm secret
READ_TOKEN=""     # the log service's read token, likewise
LOGGER_REPLICAS=2 # 1 when the log service here has no PostgreSQL engine
EXTRA_IMAGES=()

readonly PROG="test-swarm"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"
log() { printf 'test-swarm: [%3d s] %s\n' "${SECONDS}" "$*"; }

# pass, fail, check and the PASSED/FAILED counts.
# shellcheck source-path=SCRIPTDIR source=../lib/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"


# As check, for a condition that becomes true within $2 seconds.
check_within() {
  local name="$1" timeout="$2"
  shift 2
  check "${name}" wait_for "${timeout}" "${name}" "$@"
}

# `docker` on node $1 (1-based).
on() {
  local node="$1"
  shift
  "${DOCKER}" exec "${NODE_NAMES[node - 1]}" docker "$@"
}

# Any command on node $1.
on_node() {
  local node="$1"
  shift
  "${DOCKER}" exec "${NODE_NAMES[node - 1]}" "$@"
}

cleanup() {
  local status=$? name
  set +e
  if [[ "${SWARM_KEEP:-}" == 1 ]]; then
    err "SWARM_KEEP=1: left running: ${NODE_NAMES[*]} (network ${NET}, work dir ${WORK})"
    return "${status}"
  fi
  for name in "${NODE_NAMES[@]}"; do
    # The node's engine first, so it stops its containers and releases their
    # cgroups (the nodes share the host's cgroup file system).
    "${DOCKER}" exec "${name}" node-engine stop >/dev/null 2>&1
    "${DOCKER}" rm -f -v "${name}" >/dev/null 2>&1
  done
  "${DOCKER}" network rm "${NET}" >/dev/null 2>&1
  "${DOCKER}" rmi "${GESTOR_IMAGE}" "${LOGGER_IMAGE}" "${EXTRA_IMAGES[@]}" >/dev/null 2>&1
  [[ -n "${WORK}" ]] && rm -rf "${WORK}"
  return "${status}"
}

install_missing() {
  apt_install_missing prometheus prometheus-alertmanager jq curl
  "${REPO_ROOT}/scripts/ensure-docker.sh"
}

# prometheus.yml names its rule files relative to itself, as the stack mounts
# them: check it with both beside it.
promtool_config() {
  local dir="${WORK}/promtool"
  mkdir -p "${dir}"
  cp "${REPO_ROOT}/deploy/swarm/prometheus.yml" "${dir}/"
  cp "${REPO_ROOT}/prometheus/rules.yml" "${dir}/rules.yml"
  promtool check config "${dir}/prometheus.yml"
}

# A Docker CLI with `docker stack config` (upstream 20.10+), if there is one.
stack_config_cli() {
  local cli
  for cli in "${DOCKER}" $(type -ap docker); do
    if "${cli}" stack config --help 2>&1 | grep -q -- --compose-file; then
      printf '%s\n' "${cli}"
      return 0
    fi
  done
  return 1
}

# The digests and the web config are deploy.sh's; any value does here.
stack_config() {
  local cli="$1" var
  shift
  local -a digests=()
  for var in PROMETHEUS_CONFIG RULES ALERTMANAGER_CONFIG GRAFANA_DATASOURCE GRAFANA_DASHBOARDS \
    GRAFANA_DASHBOARD_GESTOR PROMETHEUS_WEB_CONFIG; do
    digests+=("${var}_DIGEST=0")
  done
  env "${digests[@]}" PROMETHEUS_WEB_CONFIG=/dev/null PROMETHEUS_IMAGE="${PROM_IMAGE}" \
    "${cli}" stack config "$@" >/dev/null
}

static_checks() {
  local cli
  log "static checks"
  check "promtool check config deploy/swarm/prometheus.yml (with prometheus/rules.yml)" \
    promtool_config
  check "promtool test rules tests/swarm/rules_test.yml" \
    promtool test rules "${REPO_ROOT}/tests/swarm/rules_test.yml"
  check "amtool check-config deploy/swarm/alertmanager.yml" \
    amtool check-config "${REPO_ROOT}/deploy/swarm/alertmanager.yml"
  if cli="$(stack_config_cli)"; then
    check "docker stack config -c deploy/swarm/stack.yml" \
      stack_config "${cli}" -c "${REPO_ROOT}/deploy/swarm/stack.yml"
    check "docker stack config with tests/swarm/stack.test.yml" \
      stack_config "${cli}" -c "${REPO_ROOT}/deploy/swarm/stack.yml" \
      -c "${REPO_ROOT}/tests/swarm/stack.test.yml"
  else
    log "no Docker CLI here has 'docker stack config'; the deploy below reads the file"
  fi
}

build_images() {
  log "building images"
  env LOGGER_IMAGE="${LOGGER_IMAGE}" "${REPO_ROOT}/scripts/build-images.sh"
  if [[ ! -x "${GESTOR_BIN}" ]]; then
    log "building ${GESTOR_BIN}"
    (cd "${REPO_ROOT}" && cargo build --release --locked)
  fi
  # The prebuilt stage takes target/release/gestor; a GESTOR_BIN elsewhere is
  # copied into a context of its own.
  local ctx="${REPO_ROOT}"
  if [[ "$(realpath "${GESTOR_BIN}")" != "$(realpath -m "${REPO_ROOT}/target/release/gestor")" ]]; then
    ctx="${WORK}/gestor-context"
    mkdir -p "${ctx}/target/release"
    cp "${REPO_ROOT}/Dockerfile" "${REPO_ROOT}/Cargo.toml" "${ctx}/"
    cp "${GESTOR_BIN}" "${ctx}/target/release/gestor"
  fi
  "${DOCKER}" build -q --target prebuilt -t "${GESTOR_IMAGE}" -f "${REPO_ROOT}/Dockerfile" \
    "${ctx}" >/dev/null
  "${DOCKER}" build -q -t "${NODE_IMAGE}" "${REPO_ROOT}/images/swarm-node" >/dev/null
  "${DOCKER}" build -q -t "${PROM_IMAGE}" "${REPO_ROOT}/images/swarm-prometheus" >/dev/null
  "${DOCKER}" build -q -t "${POSTGRES_IMAGE}" "${REPO_ROOT}/images/postgres" >/dev/null
  "${DOCKER}" build -q -t "${SOCKET_PROXY_IMAGE}" "${REPO_ROOT}/images/socket-proxy" >/dev/null
}

start_node() {
  local i="$1" name="${NET}-${1}"
  NODE_NAMES+=("${name}")
  HOSTS+=("${SCOPE}-node${i}")
  # The repository, read-only: the generator runs on each node from it, and
  # deploy.sh on the manager.
  "${DOCKER}" run -d --init --name "${name}" --hostname "${SCOPE}-node${i}" \
    --label "gestor.scope=${SCOPE}" --network "${NET}" \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /var/lib/docker:exec \
    -v "${REPO_ROOT}:/opt/gestor:ro" \
    -e "STORAGE_DRIVER=${SWARM_STORAGE_DRIVER:-}" \
    "${NODE_IMAGE}" >/dev/null
}

node_ip() {
  "${DOCKER}" inspect -f "{{(index .NetworkSettings.Networks \"${NET}\").IPAddress}}" "$1"
}

# A copy of image $1 in one layer, config kept, for nodes on the vfs driver
# (a full copy of the file system per layer; and the local base image's root
# directory is mode 0700, which vfs keeps and overlay2 hides, so that the
# non-root users of the log service and Alertmanager could not run).
flatten_image() {
  local src="$1" dst="$2" cid
  local -a changes=() args=()
  mapfile -t changes < <("${DOCKER}" image inspect --format '{{json .Config}}' "${src}" | jq -r '
    def secs: if . == null or . == 0 then empty else "\(. / 1000000000 | floor)s" end;
    [ (.Env // [])[] | "ENV \(split("=")[0])=\(split("=")[1:] | join("=") | @json)" ],
    [ if (.User // "") != "" then "USER \(.User)" else empty end ],
    [ if (.WorkingDir // "") != "" then "WORKDIR \(.WorkingDir)" else empty end ],
    [ if .Entrypoint then "ENTRYPOINT \(.Entrypoint | tojson)" else empty end ],
    [ if .Cmd then "CMD \(.Cmd | tojson)" else empty end ],
    [ (.ExposedPorts // {}) | keys[] | "EXPOSE \(.)" ],
    [ (.Volumes // {}) | keys[] | "VOLUME \(.)" ],
    [ .Healthcheck // empty | select(.Test[0] == "CMD" or .Test[0] == "CMD-SHELL")
      | "HEALTHCHECK"
        + ([.Interval | secs | " --interval=\(.)"] | add // "")
        + ([.Timeout | secs | " --timeout=\(.)"] | add // "")
        + ([.StartPeriod | secs | " --start-period=\(.)"] | add // "")
        + (if (.Retries // 0) > 0 then " --retries=\(.Retries)" else "" end)
        + (if .Test[0] == "CMD" then " CMD \(.Test[1:] | tojson)" else " CMD \(.Test[1])" end) ]
    | .[]')
  local c
  for c in "${changes[@]}"; do
    args+=(--change "${c}")
  done
  cid="$("${DOCKER}" create "${src}")"
  "${DOCKER}" export "${cid}" | "${DOCKER}" import "${args[@]}" - "${dst}" >/dev/null
  "${DOCKER}" rm "${cid}" >/dev/null
}

# Saves the images named in $2... in one archive (the layers they share, the
# Debian base, once) and loads it, under the same names, into the nodes
# listed in $1 (comma-separated numbers).
load_images() {
  local nodes="$1" tar image node i
  shift
  local -a images=("$@") srcs=()
  for image in "${images[@]}"; do
    if [[ "$(on 1 info --format '{{.Driver}}')" == vfs ]]; then
      srcs+=("${image%%:*}:${SCOPE}-flat-${nodes//,/-}")
      flatten_image "${image}" "${srcs[-1]}"
      EXTRA_IMAGES+=("${srcs[-1]}")
    else
      srcs+=("${image}")
    fi
  done
  tar="${WORK}/images-${nodes//,/-}.tar"
  "${DOCKER}" save -o "${tar}" "${srcs[@]}"
  local -a pids=()
  for node in ${nodes//,/ }; do
    {
      "${DOCKER}" exec -i "${NODE_NAMES[node - 1]}" docker load -q <"${tar}" >/dev/null
      for i in "${!images[@]}"; do
        [[ "${srcs[i]}" == "${images[i]}" ]] || on "${node}" tag "${srcs[i]}" "${images[i]}"
      done
    } &
    pids+=("$!")
  done
  local pid rc=0
  for pid in "${pids[@]}"; do
    wait "${pid}" || rc=1
  done
  rm -f "${tar}"
  return "${rc}"
}

start_swarm() {
  local i token
  log "starting ${NODES} nodes"
  "${DOCKER}" network create --label "gestor.scope=${SCOPE}" "${NET}" >/dev/null
  for ((i = 1; i <= NODES; i++)); do
    start_node "${i}"
  done
  for ((i = 1; i <= NODES; i++)); do
    wait_for 60 "node ${i}'s engine" on_node "${i}" node-engine status
    NODE_IPS+=("$(node_ip "${NODE_NAMES[i - 1]}")")
  done
  log "storage driver on the nodes: $(on 1 info --format '{{.Driver}}')"
  on 1 swarm init --advertise-addr "${NODE_IPS[0]}" >/dev/null
  token="$(on 1 swarm join-token -q worker)"
  for ((i = 2; i <= NODES; i++)); do
    on "${i}" swarm join --token "${token}" "${NODE_IPS[0]}:2377" >/dev/null
  done
  check "${NODES} nodes Ready in the swarm" nodes_ready
  # The log service's two replicas on nodes 1 and 2: node 3 is the drill's.
  on 1 node update --label-add gestor.logger=false "${HOSTS[2]}" >/dev/null
  log "loading images into the nodes"
  local n2 n3
  # Three archives at once: what every node runs (gestor, the stress image),
  # plus the log service on node 2, plus the monitoring images on node 1.
  load_images 1 "${GESTOR_IMAGE}" "${STRESS_IMAGE}" "${LOGGER_IMAGE}" "${PROM_IMAGE}" \
    "${POSTGRES_IMAGE}" "${SOCKET_PROXY_IMAGE}" &
  n2=$!
  load_images 2 "${GESTOR_IMAGE}" "${STRESS_IMAGE}" "${LOGGER_IMAGE}" &
  n3=$!
  load_images 3 "${GESTOR_IMAGE}" "${STRESS_IMAGE}"
  wait "${n2}"
  wait "${n3}"
  PROM="http://${NODE_IPS[0]}:9090"
  LOGS="http://${NODE_IPS[0]}:8000"
  LOGS2="http://${NODE_IPS[1]}:8000"
}

nodes_ready() {
  local ready
  ready="$(on 1 node ls --format '{{.Hostname}} {{.Status}}' | grep -c ' Ready$')"
  [[ "${ready}" == "${NODES}" ]] || { on 1 node ls; return 1; }
}

# deploy.sh on node 1, from DEPLOY_ROOT, with the test's images.
run_deploy() {
  "${DOCKER}" exec \
    -e "GESTOR_IMAGE=${GESTOR_IMAGE}" -e "LOGGER_IMAGE=${LOGGER_IMAGE}" \
    -e "PROMETHEUS_IMAGE=${PROM_IMAGE}" -e "POSTGRES_IMAGE=${POSTGRES_IMAGE}" \
    -e "SOCKET_PROXY_IMAGE=${SOCKET_PROXY_IMAGE}" -e "GESTOR_INTERVAL=${INTERVAL}" \
    -e "LOGGER_REPLICAS=${LOGGER_REPLICAS}" \
    "${NODE_NAMES[0]}" "${DEPLOY_ROOT}/deploy/swarm/deploy.sh" "${STACK}" -- \
    --compose-file "${DEPLOY_ROOT}/tests/swarm/stack.test.yml" --resolve-image never
}

# How IPsec went on node 1 once the encrypted overlays have peers on other
# nodes: "ok: N security associations", or "failed: " and the engine's own
# error; nothing (status 1) while neither is known yet.
ipsec_outcome() {
  local sas line
  sas="$(on_node 1 ip xfrm state | grep -c '^src ' || true)"
  if ((sas > 0)); then
    echo "ok: ${sas} security associations on node 1"
    return 0
  fi
  line="$(on_node 1 grep -m 1 'Failed Adding' /var/log/dockerd.log || true)"
  [[ -n "${line}" ]] || return 1
  echo "failed: ${line}"
}

# Overlay network $1 of the stack is created encrypted.
network_encrypted() {
  on 1 network inspect "${STACK}_$1" --format '{{json .Options}}' | jq -e 'has("encrypted")'
}

no_stack_networks() {
  [[ -z "$(on 1 network ls -q --filter "label=com.docker.stack.namespace=${STACK}")" ]]
}

# The stack's overlays are encrypted as deployed. Where IPsec cannot run (the
# nested engines of this machine: the kernel refuses the engine's security
# associations, so encrypted overlays carry nothing between nodes), the
# stack is deployed again with the setting removed from its copy, so that the
# rest can be tested; the engine's error is printed.
encryption_checks() {
  local net outcome line
  for net in fleet discovery store; do
    check "docker network inspect: overlay ${STACK}_${net} is encrypted" network_encrypted "${net}"
  done
  wait_for 90 "IPsec between the nodes to work or fail" ipsec_outcome || true
  outcome="$(ipsec_outcome || echo "unknown: no security association, no error")"
  if [[ "${outcome}" == ok:* ]]; then
    pass "IPsec runs between the nodes (${outcome#ok: })"
    return 0
  fi
  log "IPsec cannot run in these nested engines; the engine says:"
  line="${outcome#failed: }"
  # The key of an association of this throwaway swarm: left out all the same.
  [[ "${line}" =~ Key:\ 0x[0-9a-f]+ ]] && line="${line/"${BASH_REMATCH[0]}"/Key: (left out)}"
  log "  ${line}"
  log "redeploying with the overlays unencrypted (a copy of stack.yml) to test the rest"
  on 1 stack rm "${STACK}" >/dev/null
  wait_for 120 "the stack's networks to go" no_stack_networks
  on_node 1 sed -i -e '/^    driver_opts:$/{N;/\n      encrypted: ""$/d}' \
    "${DEPLOY_ROOT}/deploy/swarm/stack.yml"
  if on_node 1 grep -q 'encrypted: ""' "${DEPLOY_ROOT}/deploy/swarm/stack.yml"; then
    fail "removing the encryption from the copy of stack.yml"
  fi
  run_deploy >"${WORK}/deploy.out" 2>&1 || { cat "${WORK}/deploy.out" >&2; fail "deploy.sh"; return 1; }
}

# deploy.sh fails, saying why, when the node labelled gestor.monitoring=true
# is a worker (node 2), and deploys nothing.
refuses_worker_monitoring() {
  local out
  on 1 node update --label-add gestor.monitoring=true "${HOSTS[1]}" >/dev/null
  if out="$(run_deploy 2>&1)"; then
    echo "deploy.sh succeeded: ${out}"
    return 1
  fi
  on 1 node update --label-rm gestor.monitoring "${HOSTS[1]}" >/dev/null
  grep -q "is not a manager" <<<"${out}" || { echo "${out}"; return 1; }
  [[ -z "$(on 1 service ls -q)" ]] || { echo "services were created"; return 1; }
}

# Whether the log service built here has the PostgreSQL engine (issue 25:
# `python -m app.migrate`). Without it, the stack runs one replica on its
# SQLite default (two would be two separate databases), on node 1, and the
# PostgreSQL checks are skipped, saying so.
choose_store() {
  if "${DOCKER}" run --rm --entrypoint test "${LOGGER_IMAGE}" -f /opt/logger/app/migrate.py; then
    return 0
  fi
  LOGGER_REPLICAS=1
  on 1 node update --label-add gestor.logger=false "${HOSTS[1]}" >/dev/null
  log "SKIP the PostgreSQL checks: the log service here has no PostgreSQL engine yet"
  log "  (no app/migrate.py; issue 25): one replica on its SQLite default, on node 1"
}

deploy_stack() {
  log "deploying the stack"
  choose_store
  on_node 1 sh -c "mkdir -p ${DEPLOY_ROOT}/tests && cp -r /opt/gestor/deploy /opt/gestor/prometheus \
    /opt/gestor/grafana /opt/gestor/scripts ${DEPLOY_ROOT}/ && cp -r /opt/gestor/tests/swarm ${DEPLOY_ROOT}/tests/"
  check "deploy.sh refuses a monitoring node that is not a manager" refuses_worker_monitoring
  on 1 node update --label-add gestor.monitoring=true "${HOSTS[0]}" >/dev/null
  run_deploy >"${WORK}/deploy.out" 2>&1 || { cat "${WORK}/deploy.out" >&2; fail "deploy.sh"; return 1; }
  encryption_checks
  # Grafana's image cannot be had here (see stack.test.yml).
  on 1 service scale -d "${STACK}_grafana=0" >/dev/null 2>&1
  PROM_PASSWORD="$(on_node 1 cat "${CREDENTIALS}/gestor_prometheus_password")"
  READ_TOKEN="$(on_node 1 cat "${CREDENTIALS}/gestor_logger_read_token")"
}

# `docker service ls` shows every service of the stack at its target.
services_running() {
  local got
  got="$(on 1 service ls --format '{{.Name}} {{.Replicas}}' | grep -v "_logger-migrate " \
    | sed 's/ (max [0-9]* per node)$//' | sort)"
  local want
  want="$(printf '%s\n' "${STACK}_alertmanager 1/1" "${STACK}_gestor ${NODES}/${NODES}" \
    "${STACK}_grafana 0/0" "${STACK}_logger ${LOGGER_REPLICAS}/${LOGGER_REPLICAS}" "${STACK}_postgres 1/1" \
    "${STACK}_prometheus 1/1" "${STACK}_socket-proxy 1/1")"
  [[ "${got}" == "${want}" ]] || { echo "${got}"; return 1; }
}

# The running gestor task of host $1 (its id), from the manager.
gestor_task() {
  on 1 service ps -q --filter "node=$1" --filter desired-state=running "${STACK}_gestor" \
    | head -n 1 | grep .
}

gestor_task_running() {
  local task state
  task="$(gestor_task "$1")" || return 1
  state="$(on 1 inspect -f '{{.Status.State}}' "${task}")"
  [[ "${state}" == running ]] || { echo "task ${task} is ${state}"; return 1; }
  printf '%s\n' "${task}"
}

# curl against the stack's Prometheus, with its basic auth.
prom_curl() {
  curl -fsS --max-time 10 -u "admin:${PROM_PASSWORD}" "$@"
}

# curl against the log service, with the read token.
logs_curl() {
  curl -fsS --max-time 20 -H "Authorization: Bearer ${READ_TOKEN}" "$@"
}

# Prometheus' answer to instant query $1 (JSON).
prom_query() {
  prom_curl --get --data-urlencode "query=$1" "${PROM}/api/v1/query"
}

# The sorted `node` labels of the series of query $1.
prom_nodes() {
  prom_query "$1" | jq -r '.data.result[].metric.node' | sort
}

sorted_hosts() {
  printf '%s\n' "$@" | sort
}

# Exactly these hosts ($@) have `up{job="gestor"} == 1`.
gestor_up_on() {
  local got want
  got="$(prom_nodes 'up{job="gestor"} == 1')"
  want="$(sorted_hosts "$@")"
  [[ "${got}" == "${want}" ]] || { printf 'up: %s\nwant: %s\n' "${got//$'\n'/ }" "${want//$'\n'/ }"; return 1; }
}

# Every active gestor target came from Swarm discovery, with node, host and
# instance taken from the node.
targets_from_discovery() {
  prom_curl "${PROM}/api/v1/targets?state=active" | jq -e --argjson n "${NODES}" '
    [.data.activeTargets[] | select(.labels.job == "gestor")]
    | length == $n and all(
        (.discoveredLabels.__meta_dockerswarm_task_id // "") != ""
        and .labels.node == .discoveredLabels.__meta_dockerswarm_node_hostname
        and .labels.instance == .labels.node and .labels.host == .labels.node)'
}

logger_scraped() {
  [[ "$(prom_query 'up{job="logger"} == 1' | jq '.data.result | length')" == "${LOGGER_REPLICAS}" ]]
}

# Runs the generator on node $1 and keeps what it says it created.
generate_on() {
  local node="$1"
  on_node "${node}" /opt/gestor/cron/create_containers.sh --print-names \
    -n "${PER_NODE}" --image "${STRESS_IMAGE}" --log-file '' \
    --lock-file /tmp/gestor-generator.lock --vm-bytes 32M --hdd-bytes 16M \
    >"${WORK}/created.${node}"
}

# Node $1 has exactly one running managed container of each type the
# generator created there, and it is one the generator created; none of the
# generator's containers is still `created` (on loaded cores `docker run`
# can take many seconds between creating a container and starting it, and
# one that starts late is one more to kill).
one_per_type() {
  local node="$1" running want got starting
  starting="$(on "${node}" ps -a --filter label=gestor.managed=true --filter status=created \
    --format '{{.Names}}')"
  [[ -z "${starting}" ]] || { echo "node ${node}: not started yet: ${starting//$'\n'/ }"; return 1; }
  running="$(on "${node}" ps --filter label=gestor.managed=true --format '{{.Names}}' | sort)"
  want="$(sed 's/-.*//' "${WORK}/created.${node}" | sort -u)"
  got="$(printf '%s\n' "${running}" | sed 's/-.*//' | sort)"
  if [[ "${got}" != "${want}" ]]; then
    printf 'node %s runs: %s; types created: %s\n' "${node}" "${running//$'\n'/ }" "${want//$'\n'/ }"
    return 1
  fi
  comm -23 <(printf '%s\n' "${running}") <(sort "${WORK}/created.${node}") | grep -q . \
    && { echo "node ${node} runs a container the generator did not create"; return 1; }
  return 0
}

# Records of host $1 (JSON Lines) matching query string $2.
host_records() {
  logs_curl "${LOGS}/logs/export?host=$1${2:+&$2}"
}

# The log service holds one kill record per surplus container of node $1
# (created minus the types kept), each naming a container the generator made.
# A kill whose removal failed (on these loaded cores the node's engine can
# take more than gestor's 5 s to answer) is finished by gestor's next cycle
# as a `remove` record of the exited container: that container is accounted
# for by its remove record instead.
kills_recorded() {
  local node="$1" host="${HOSTS[$1 - 1]}" created types want names
  created="$(wc -l <"${WORK}/created.${node}")"
  types="$(sed 's/-.*//' "${WORK}/created.${node}" | sort -u | wc -l)"
  want=$((created - types))
  names="$(host_records "${host}" 'event=kill&event=remove' | jq -r .container_name | sort -u)"
  [[ "$(grep -c . <<<"${names}")" == "${want}" ]] \
    || { echo "${host}: $(grep -c . <<<"${names}") kill records, want ${want}"; return 1; }
  comm -23 <(printf '%s\n' "${names}") <(sort "${WORK}/created.${node}") | grep -q . \
    && { echo "${host}: a kill record names a container the generator did not create"; return 1; }
  return 0
}

cycles_of() {
  prom_query "sum(gestor_cycles_total{node=\"$1\"})" | jq -r '.data.result[0].value[1] // empty' | grep .
}

# gestor_cycles_total of host $1 reached $2 (Prometheus' last scrape).
cycles_reached() {
  local n
  n="$(cycles_of "$1")" || return 1
  ((n >= $2))
}

records_from_every_host() {
  local host
  for host in "${HOSTS[@]}"; do
    [[ "$(logs_curl "${LOGS}/logs?host=${host}&event=cycle&limit=1" \
      | jq '.count')" == 1 ]] || { echo "no cycle record from ${host}"; return 1; }
  done
}

# Every node's gestor keeps its inventory from Docker's event stream (the
# default, `events`): each has applied events (a `list` inventory applies
# none).
events_inventory_everywhere() {
  local got
  got="$(prom_nodes 'sum by (node) (gestor_inventory_events_total) > 0')"
  [[ "${got}" == "$(sorted_hosts "${HOSTS[@]}")" ]] \
    || { echo "nodes whose gestor applied events: ${got//$'\n'/ }"; return 1; }
}

govern_checks() {
  local node pids=() pid
  log "running the generator on every node"
  for ((node = 1; node <= NODES; node++)); do
    generate_on "${node}" &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "${pid}"
  done
  for ((node = 1; node <= NODES; node++)); do
    log "node ${node} created: $(tr '\n' ' ' <"${WORK}/created.${node}")"
    [[ "$(wc -l <"${WORK}/created.${node}")" == "${PER_NODE}" ]] \
      || fail "the generator created ${PER_NODE} containers on node ${node}"
  done
  local base=()
  for ((node = 1; node <= NODES; node++)); do
    check_within "node ${node}: one running managed container per type it was given" 90 \
      one_per_type "${node}"
    base+=("$(cycles_of "${HOSTS[node - 1]}" || echo 0)")
  done
  for ((node = 1; node <= NODES; node++)); do
    wait_for 60 "two more cycles on node ${node}" \
      cycles_reached "${HOSTS[node - 1]}" "$((base[node - 1] + 2))" || true
    check "node ${node}: still one per type two cycles later" one_per_type "${node}"
    check_within "node ${node}: the log service holds a kill (or remove) record per surplus container" 60 \
      kills_recorded "${node}"
  done
  check "the log service holds cycle records from all ${NODES} hosts" records_from_every_host
  check "every node's gestor keeps its inventory from Docker's events" events_inventory_everywhere
  # For the record: full listings per node (at start, the periodic drift
  # check, and each gap after an event that could not be inspected).
  log "full listings per node: $(prom_query 'sum by (node) (gestor_inventory_resyncs_total)' \
    | jq -r '[.data.result[] | "\(.metric.node)=\(.value[1])"] | join(" ")' || true)"
}

spooled_records() {
  on_node 3 sh -c "cat ${SPOOL_DIR}/*.jsonl 2>/dev/null" | jq -r .id
}

# At least $1 records wait in node 3's spool.
spool_holds() {
  (($(spooled_records | grep -c .) >= $1))
}

# Alert $1 naming host $2 is firing in Prometheus.
alert_firing_for() {
  prom_curl "${PROM}/api/v1/alerts" | jq -e --arg name "$1" --arg host "$2" '
    any(.data.alerts[]; .state == "firing" and .labels.alertname == $name
      and .labels.host == $host)'
}

# Neither GestorHostGone nor GestorDown names host $1 (pending or firing).
# (Others may, rightly: GestorKillFailures counts a kill that failed while
# the node's engine was stopping, for 10 minutes.)
no_alert_for() {
  prom_curl "${PROM}/api/v1/alerts" | jq -e --arg host "$1" '
    [.data.alerts[] | select(.labels.host == $host
      and (.labels.alertname == "GestorHostGone" or .labels.alertname == "GestorDown"))]
    | if length == 0 then true else (map("\(.labels.alertname) \(.state)") | join(", ") | error) end'
}

# Prometheus has no active target of job gestor on host $1 (discovery no
# longer lists its task as running).
target_vanished() {
  prom_curl "${PROM}/api/v1/targets?state=active" | jq -e --arg host "$1" '
    [.data.activeTargets[] | select(.labels.job == "gestor" and .labels.host == $host)]
    | length == 0'
}

# The stack's Alertmanager holds alert $1 naming host $2 (asked from the
# Prometheus task, inside the overlay network; Alertmanager publishes no port).
alertmanager_has_alert_for() {
  local prom
  prom="$(on 1 ps -q --filter "label=com.docker.swarm.service.name=${STACK}_prometheus" | head -n 1)"
  on 1 exec "${prom}" curl -fsS --max-time 5 http://alertmanager:9093/api/v2/alerts \
    | jq -e --arg name "$1" --arg host "$2" \
      'any(.[]; .labels.alertname == $name and .labels.host == $host)'
}

# The log service last heard from host $1 more than 2 minutes ago (the
# floor of GestorRecordsStopped's threshold; at a 2 s cycle, the threshold).
records_overdue() {
  [[ "$(prom_query "time() - gestor_logger_last_record_received_timestamp_seconds{host=\"$1\"} > 120" \
    | jq '.data.result | length')" -ge 1 ]]
}

# The loaded GestorRecordsStopped rule's expression, evaluated now, names no
# series of host $1 (and the alert is neither pending nor firing for it).
records_stopped_quiet_for() {
  local expr n
  expr="$(prom_curl "${PROM}/api/v1/rules?type=alert" | jq -r '
    [.data.groups[].rules[] | select(.name == "GestorRecordsStopped") | .query][0] // empty')"
  [[ -n "${expr}" ]] || { echo "no rule GestorRecordsStopped loaded"; return 1; }
  n="$(prom_query "${expr}" | jq --arg host "$1" '[.data.result[] | select(.metric.host == $host)] | length')"
  ((n == 0)) || { echo "the expression returns ${n} series for $1"; return 1; }
  prom_curl "${PROM}/api/v1/alerts" | jq -e --arg host "$1" '
    [.data.alerts[] | select(.labels.alertname == "GestorRecordsStopped" and .labels.host == $host)]
    | length == 0'
}

# Prometheus reports host $1's gestor target down (the cut is real).
scrape_fails() {
  [[ "$(prom_query "up{job=\"gestor\",node=\"$1\"} == 0" | jq '.data.result | length')" == 1 ]]
}

# Host $1 keeps cycling: its up is 1 and the log service has one of its
# cycle records from after Unix time $2.
goes_on() {
  local host="$1" since="$2"
  [[ "$(prom_query "up{job=\"gestor\",node=\"${host}\"} == 1" | jq '.data.result | length')" == 1 ]] \
    || { echo "${host} is not up"; return 1; }
  [[ "$(logs_curl "${LOGS}/logs?host=${host}&event=cycle&since=${since}&limit=1" \
    | jq '.count')" == 1 ]] || { echo "no cycle record from ${host} since ${since}"; return 1; }
}

new_task_running() {
  local task
  task="$(gestor_task_running "$1")" || return 1
  [[ "${task}" != "$2" ]] || { echo "still the old task ${task}"; return 1; }
}

# Every id in file $1 is stored at the log service under host $2.
spool_delivered() {
  local missing
  missing="$(comm -23 <(sort -u "$1") <(host_records "$2" | jq -r .id | sort -u) | wc -l)"
  ((missing == 0)) || { echo "${missing} of $(wc -l <"$1") spooled records not stored"; return 1; }
}

# The HTTP status of a request made from node $1 (its own address), curl
# arguments $2...; 000 when nothing answers.
status_from() {
  local node="$1"
  shift
  on_node "${node}" curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" || true
}

# A request from node $1 (args $3...) gets HTTP status $2.
status_is() {
  local node="$1" want="$2" got
  shift 2
  got="$(status_from "${node}" "$@")"
  [[ "${got}" == "${want}" ]] || { echo "got ${got}, want ${want}: ${*}"; return 1; }
}

# Nothing answers TCP port $2 of node 1 from node $1 (curl: could not
# connect, exit 7).
port_closed() {
  local rc=0
  on_node "$1" curl -s -o /dev/null --max-time 5 "http://${NODE_IPS[0]}:$2/" || rc=$?
  ((rc == 7)) || { echo "port $2: curl exit ${rc}, want 7 (connection refused)"; return 1; }
}

# The stack's Prometheus container on node 1.
prom_container() {
  on 1 ps -q --filter "label=com.docker.swarm.service.name=${STACK}_prometheus" | head -n 1 | grep .
}

# A request made by the Prometheus container (curl args $2...) gets status $1.
prom_task_status_is() {
  local want="$1" prom got
  shift
  prom="$(prom_container)"
  got="$(on 1 exec "${prom}" curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" || true)"
  [[ "${got}" == "${want}" ]] || { echo "got ${got}, want ${want}: ${*}"; return 1; }
}

# Prometheus runs as a user other than root and has no Docker socket.
prom_unprivileged() {
  local prom uid
  prom="$(prom_container)"
  uid="$(on 1 exec "${prom}" id -u)"
  [[ "${uid}" != 0 ]] || { echo "Prometheus runs as root"; return 1; }
  if on 1 exec "${prom}" test -e /var/run/docker.sock; then
    echo "Prometheus has /var/run/docker.sock"
    return 1
  fi
}

# Closed by default: from node 3 (neither the monitoring node nor a node of
# the log service), reads of the log service and Prometheus' API need their
# secret; the services nobody needs from outside are not published;
# discovery reads the Docker API only through the
# socket proxy, which refuses anything but its GETs.
security_checks() {
  local q="${PROM}/api/v1/query?query=up"
  log "closed by default, asked from ${HOSTS[2]} (${NODE_IPS[2]})"
  check "the log service answers /healthz without a token (the port is open)" \
    status_is 3 200 "${LOGS}/healthz"
  check "GET /logs without the read token is refused (401)" status_is 3 401 "${LOGS}/logs"
  check "GET /logs/export without the read token is refused (401)" \
    status_is 3 401 "${LOGS}/logs/export"
  check "GET /logs with a wrong token is refused (401)" \
    status_is 3 401 -H "Authorization: Bearer not-the-token" "${LOGS}/logs"
  check "GET /logs with the read token (Bearer) works" \
    status_is 3 200 -H "Authorization: Bearer ${READ_TOKEN}" "${LOGS}/logs?limit=1"
  check "GET /logs/export with the read token (Basic, any user) works" \
    status_is 3 200 -u "operator:${READ_TOKEN}" "${LOGS}/logs/export?limit=1"
  check "Prometheus' /api/v1/query without credentials is refused (401)" status_is 3 401 "${q}"
  check "Prometheus' /api/v1/query with a wrong password is refused (401)" \
    status_is 3 401 -u "admin:wrong" "${q}"
  check "Prometheus' /api/v1/query with its basic auth works" \
    status_is 3 200 -u "admin:${PROM_PASSWORD}" "${q}"
  check "Alertmanager (9093) is not published" port_closed 3 9093
  check "PostgreSQL (5432) is not published" port_closed 3 5432
  check "the socket proxy (2375) is not published" port_closed 3 2375
  check "Prometheus runs as non-root, without the Docker socket" prom_unprivileged
  check "through the socket proxy: GET /v1.41/nodes works (what discovery reads)" \
    prom_task_status_is 200 http://socket-proxy:2375/v1.41/nodes
  check "through the socket proxy: POST /containers/create is refused (403)" \
    prom_task_status_is 403 -X POST -H 'Content-Type: application/json' -d '{"Image":"x"}' \
    http://socket-proxy:2375/v1.41/containers/create
  check "through the socket proxy: GET /containers/json is refused (403)" \
    prom_task_status_is 403 http://socket-proxy:2375/v1.41/containers/json
}

# The one-shot migration task completed (exit 0).
migration_completed() {
  on 1 service ps --format '{{.CurrentState}}' "${STACK}_logger-migrate" | grep -q '^Complete'
}

# Records of host $1 up to Unix time $2, as counted by the replica at $3.
count_until() {
  logs_curl "$3/logs?host=$1&until=$2&limit=1" | jq -e '.count'
}

# Both replicas count the same records (> 0) of host $1 up to Unix time $2:
# they share one database (gestor's batches go to either replica).
replicas_agree() {
  local a b
  a="$(count_until "$1" "$2" "${LOGS}")" || return 1
  b="$(count_until "$1" "$2" "${LOGS2}")" || return 1
  if ((a == 0)) || [[ "${a}" != "${b}" ]]; then
    echo "node 1's replica counts ${a}, node 2's ${b}"
    return 1
  fi
}

# Cycle records of every host arrive after Unix time $1.
records_since_from_every_host() {
  local host
  for host in "${HOSTS[@]}"; do
    [[ "$(logs_curl "${LOGS}/logs?host=${host}&event=cycle&since=$1&limit=1" \
      | jq '.count')" == 1 ]] || { echo "no cycle record from ${host} since $1"; return 1; }
  done
}

logger_replicas_running() {
  on 1 service ls --filter "name=${STACK}_logger" --format '{{.Name}} {{.Replicas}}' \
    | grep -q "^${STACK}_logger 2/2"
}

# The log service on PostgreSQL: the migration ran once, both replicas read
# one database, and records keep arriving while one replica is killed.
store_checks() {
  local since cid killed_at
  log "the log service: 2 replicas on PostgreSQL"
  check_within "the one-shot migration completed" 120 migration_completed
  since="$(($(date +%s) - 5))"
  check_within "both replicas answer the same record count (one database)" 60 \
    replicas_agree "${HOSTS[0]}" "${since}"
  cid="$(on 2 ps -q --filter "label=com.docker.swarm.service.name=${STACK}_logger" | head -n 1)"
  on 2 kill --signal KILL "${cid}" >/dev/null
  killed_at="$(date +%s)"
  log "killed the log-service replica on ${HOSTS[1]} (SIGKILL)"
  check_within "records of every host still arrive after one replica is killed" 60 \
    records_since_from_every_host "${killed_at}"
  check_within "the killed replica is replaced (2/2)" 90 logger_replicas_running
}

# The config names of service $1.
config_names() {
  on 1 service inspect "${STACK}_$1" \
    --format '{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{.ConfigName}} {{end}}'
}

# Service $1 runs its one replica with config $2.
service_runs_config() {
  local tasks
  [[ "$(config_names "$1")" == *"$2"* ]] || { echo "configs: $(config_names "$1")"; return 1; }
  tasks="$(on 1 service ls --filter "name=${STACK}_$1" --format '{{.Replicas}}')"
  [[ "${tasks}" == 1/1 ]] || { echo "replicas ${tasks}"; return 1; }
  on 1 service ps --filter desired-state=running --format '{{.CurrentState}}' "${STACK}_$1" \
    | grep -q '^Running' || { echo "no running task"; return 1; }
}

# An edited config: deploy.sh again gives it a new name (its digest) and the
# service runs with it.
redeploy_checks() {
  local before digest
  log "redeploy after editing alertmanager.yml"
  before="$(config_names alertmanager)"
  on_node 1 sh -c "printf '# edited by the swarm test\n' >>${DEPLOY_ROOT}/deploy/swarm/alertmanager.yml"
  digest="$(on_node 1 sha256sum "${DEPLOY_ROOT}/deploy/swarm/alertmanager.yml" | cut -c1-12)"
  if run_deploy >"${WORK}/redeploy.out" 2>&1; then
    pass "deploy.sh again after an edit succeeds"
  else
    fail "deploy.sh again after an edit succeeds"
    sed 's/^/    /' "${WORK}/redeploy.out"
    return 0
  fi
  on 1 service scale -d "${STACK}_grafana=0" >/dev/null 2>&1
  log "alertmanager's config: ${before} -> gestor_alertmanager_${digest}"
  check_within "Alertmanager runs with the new config gestor_alertmanager_${digest}" 90 \
    service_runs_config alertmanager "gestor_alertmanager_${digest}"
}

drill() {
  local host="${HOSTS[2]}" old_task stopped_at
  log "drill: ${host} loses the overlay network, then its engine"
  old_task="$(gestor_task_running "${host}")"
  # VXLAN (UDP 4789) carries all overlay traffic: gestor there can reach
  # neither the log service nor be scraped; the swarm's control plane (TCP
  # 2377, 7946) is untouched.
  on_node 3 iptables -I OUTPUT -p udp --dport 4789 -j DROP
  check_within "${host}: Prometheus cannot scrape it any more" 60 scrape_fails "${host}"
  check_within "${host}: records wait in gestor's spool while the log service is unreachable" 60 \
    spool_holds 12
  on_node 3 node-engine stop
  stopped_at="$(date +%s)"
  spooled_records | sort -u >"${WORK}/spooled.ids"
  log "drill: ${host}'s engine stopped with $(wc -l <"${WORK}/spooled.ids") records in the spool"
  check_within "${host}: its target vanishes from discovery" 90 target_vanished "${host}"
  check_within "GestorHostGone naming ${host} fires" 150 \
    alert_firing_for GestorHostGone "${host}"
  log "drill: GestorHostGone fires for ${host}"
  check_within "the stack's Alertmanager received it" 60 \
    alertmanager_has_alert_for GestorHostGone "${host}"
  check_within "${host}'s records stopped for longer than GestorRecordsStopped allows" 120 \
    records_overdue "${host}"
  check "GestorRecordsStopped's expression is empty for ${host} (gone from discovery)" \
    records_stopped_quiet_for "${host}"
  check "${HOSTS[0]} goes on" goes_on "${HOSTS[0]}" "${stopped_at}"
  check "${HOSTS[1]} goes on" goes_on "${HOSTS[1]}" "${stopped_at}"
  log "drill: ${host}'s engine starts again"
  on_node 3 iptables -D OUTPUT -p udp --dport 4789 -j DROP
  on_node 3 node-engine start
  check_within "${host}: a new gestor task runs" 120 new_task_running "${host}" "${old_task}"
  check_within "${host}: scraped again" 60 gestor_up_on "${HOSTS[@]}"
  check_within "${host}: every spooled record reaches the log service (by id)" 60 \
    spool_delivered "${WORK}/spooled.ids" "${host}"
  check_within "the alert about ${host} resolves" 90 no_alert_for "${host}"
}

main() {
  install_missing
  WORK="$(mktemp -d /tmp/gestor-swarm-test.XXXXXX)"
  trap cleanup EXIT
  static_checks
  build_images
  start_swarm
  deploy_stack
  check_within "every service of the stack runs (gestor on all ${NODES} nodes)" 180 services_running
  check_within "Prometheus answers on its published port" 60 \
    prom_curl "${PROM}/-/ready"
  check_within "Prometheus scrapes gestor on exactly the ${NODES} nodes" 90 gestor_up_on "${HOSTS[@]}"
  check "every gestor target comes from Swarm discovery, labelled with its node" \
    targets_from_discovery
  check_within "Prometheus scrapes every replica of the log service (${LOGGER_REPLICAS})" 60 \
    logger_scraped
  security_checks
  govern_checks
  if ((LOGGER_REPLICAS == 2)); then
    store_checks
  fi
  drill
  redeploy_checks
  printf '%d passed, %d failed\n' "${PASSED}" "${FAILED}"
  ((FAILED == 0))
}

main "$@"
