#!/usr/bin/env bash
#
# The swarm suite (`make test-swarm`): gestor's fleet stack
# (deploy/swarm/stack.yml) on a real 3-node Docker Swarm made of
# Docker-in-Docker nodes (images/swarm-node) on this machine.
#
#  1. Static: promtool checks deploy/swarm/prometheus.yml with
#     prometheus/rules.yml and runs tests/swarm/rules_test.yml (the rules
#     with the fleet's labels); `docker stack config` reads
#     the stack file (when the Docker CLI here has that command, 20.10+ of
#     upstream; Debian's 20.10 does not).
#  2. Three nodes on a network of their own; `swarm init` on the first, the
#     others join; the first is labelled gestor.monitoring=true. The images
#     (gestor's from target/release/gestor, the log service's, the stress
#     image, and images/swarm-prometheus standing in for prom/prometheus and
#     prom/alertmanager) reach the nodes by `docker save | docker load`.
#  3. deploy/swarm/deploy.sh deploys the stack (with tests/swarm/stack.test.yml
#     for the images only; gestor at a 2 s cycle with its default `events`
#     inventory). gestor must run on every node; the stack's own
#     Prometheus, queried through its published port, must have exactly the
#     three nodes as `up{job="gestor"} == 1`, found by dockerswarm_sd_configs
#     alone.
#  4. The generator (cron/create_containers.sh --print-names) runs on each node;
#     each node must come down to exactly one running managed container per
#     type it created, stay there for two more cycles, and the log service
#     must hold one kill record per surplus container of that node, and cycle
#     records from all three hosts.
#  5. Drill: the third node's overlay traffic is cut (its records wait in its
#     gestor's spool), then its engine is stopped: its target must vanish
#     from discovery (no `up == 0` left to alert on), GestorHostGone naming
#     that node must fire and reach the stack's Alertmanager, while the other
#     two nodes go on. Its engine started again (traffic
#     restored), a new gestor task must run there, be scraped again, and
#     every record id that was in the spool must arrive at the log service.
#
# SWARM_KEEP=1 leaves the nodes running for a look (remove them by hand);
# SWARM_STORAGE_DRIVER=vfs runs the nodes on vfs instead of overlay2.
#
# Everything it creates carries the run's id (containers, network, images)
# and is removed on exit, pass or fail. Nothing runs on the host's engine but
# the three node containers: the swarm, its services and their ports live
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
readonly LOGGER_IMAGE=gestor/logger:latest
readonly STACK=gestor
readonly NODES=3
readonly INTERVAL=2          # gestor's cycle here, seconds
readonly PER_NODE=8          # containers the generator creates on each node
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
readonly RUN_ID
readonly SCOPE="swarm-${RUN_ID}"
readonly NET="gestor-${SCOPE}"
readonly GESTOR_IMAGE="gestor/gestor:${SCOPE}"
# The node's view of the spool volume (the stack names volumes STACK_NAME).
readonly SPOOL_DIR="/var/lib/docker/volumes/${STACK}_gestor-spool/_data"

WORK=""
NODE_NAMES=()   # containers on the host engine
HOSTS=()        # their hostnames: the swarm's node names, gestor's `host`
NODE_IPS=()
PROM=""         # http://<node 1>:9090
LOGS=""         # http://<node 1>:8000
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
  "${DOCKER}" rmi "${GESTOR_IMAGE}" "${EXTRA_IMAGES[@]}" >/dev/null 2>&1
  [[ -n "${WORK}" ]] && rm -rf "${WORK}"
  return "${status}"
}

install_missing() {
  apt_install_missing prometheus jq curl
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

stack_config() {
  local cli="$1"
  shift
  LOGGER_TOKEN=x PROMETHEUS_IMAGE="${PROM_IMAGE}" "${cli}" stack config "$@" >/dev/null
}

static_checks() {
  local cli
  log "static checks"
  check "promtool check config deploy/swarm/prometheus.yml (with prometheus/rules.yml)" \
    promtool_config
  check "promtool test rules tests/swarm/rules_test.yml" \
    promtool test rules "${REPO_ROOT}/tests/swarm/rules_test.yml"
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
  "${REPO_ROOT}/scripts/build-images.sh"
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
  on 1 node update --label-add gestor.monitoring=true "${HOSTS[0]}" >/dev/null
  check "${NODES} nodes Ready in the swarm" nodes_ready
  log "loading images into the nodes"
  local others n
  others="$(seq -s, 2 "${NODES}")"
  # Two archives at once: what every node runs (gestor, the stress image)
  # plus the monitoring images for node 1, and the first part alone for the
  # others.
  load_images 1 "${GESTOR_IMAGE}" "${STRESS_IMAGE}" "${LOGGER_IMAGE}" "${PROM_IMAGE}" &
  n=$!
  load_images "${others}" "${GESTOR_IMAGE}" "${STRESS_IMAGE}"
  wait "${n}"
  PROM="http://${NODE_IPS[0]}:9090"
  LOGS="http://${NODE_IPS[0]}:8000"
}

nodes_ready() {
  local ready
  ready="$(on 1 node ls --format '{{.Hostname}} {{.Status}}' | grep -c ' Ready$')"
  [[ "${ready}" == "${NODES}" ]] || { on 1 node ls; return 1; }
}

deploy_stack() {
  log "deploying the stack"
  "${DOCKER}" exec \
    -e "GESTOR_IMAGE=${GESTOR_IMAGE}" -e "LOGGER_IMAGE=${LOGGER_IMAGE}" \
    -e "PROMETHEUS_IMAGE=${PROM_IMAGE}" -e "GESTOR_INTERVAL=${INTERVAL}" \
    "${NODE_NAMES[0]}" /opt/gestor/deploy/swarm/deploy.sh "${STACK}" -- \
    --compose-file /opt/gestor/tests/swarm/stack.test.yml --resolve-image never >/dev/null
  # Grafana's image cannot be had here (see stack.test.yml).
  on 1 service scale -d "${STACK}_grafana=0" >/dev/null 2>&1
}

# `docker service ls` shows every service of the stack at its target.
services_running() {
  local got
  got="$(on 1 service ls --format '{{.Name}} {{.Replicas}}' | sort)"
  local want
  want="$(printf '%s\n' "${STACK}_alertmanager 1/1" "${STACK}_gestor ${NODES}/${NODES}" \
    "${STACK}_grafana 0/0" "${STACK}_logger 1/1" "${STACK}_prometheus 1/1")"
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

# Prometheus' answer to instant query $1 (JSON).
prom_query() {
  curl -fsS --max-time 10 --get --data-urlencode "query=$1" "${PROM}/api/v1/query"
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
  curl -fsS --max-time 10 "${PROM}/api/v1/targets?state=active" | jq -e --argjson n "${NODES}" '
    [.data.activeTargets[] | select(.labels.job == "gestor")]
    | length == $n and all(
        (.discoveredLabels.__meta_dockerswarm_task_id // "") != ""
        and .labels.node == .discoveredLabels.__meta_dockerswarm_node_hostname
        and .labels.instance == .labels.node and .labels.host == .labels.node)'
}

logger_scraped() {
  [[ "$(prom_query 'up{job="logger"} == 1' | jq '.data.result | length')" == 1 ]]
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
  curl -fsS --max-time 20 "${LOGS}/logs/export?host=$1${2:+&$2}"
}

# The log service holds one kill record per surplus container of node $1
# (created minus the types kept), each naming a container the generator made.
kills_recorded() {
  local node="$1" host="${HOSTS[$1 - 1]}" created types want names
  created="$(wc -l <"${WORK}/created.${node}")"
  types="$(sed 's/-.*//' "${WORK}/created.${node}" | sort -u | wc -l)"
  want=$((created - types))
  names="$(host_records "${host}" event=kill | jq -r .container_name | sort)"
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
    [[ "$(curl -fsS --max-time 10 "${LOGS}/logs?host=${host}&event=cycle&limit=1" \
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
    check_within "node ${node}: the log service holds a kill record per surplus container" 60 \
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
  curl -fsS --max-time 10 "${PROM}/api/v1/alerts" | jq -e --arg name "$1" --arg host "$2" '
    any(.data.alerts[]; .state == "firing" and .labels.alertname == $name
      and .labels.host == $host)'
}

# Neither GestorHostGone nor GestorDown names host $1 (pending or firing).
# (Others may, rightly: GestorKillFailures counts a kill that failed while
# the node's engine was stopping, for 10 minutes.)
no_alert_for() {
  curl -fsS --max-time 10 "${PROM}/api/v1/alerts" | jq -e --arg host "$1" '
    [.data.alerts[] | select(.labels.host == $host
      and (.labels.alertname == "GestorHostGone" or .labels.alertname == "GestorDown"))]
    | if length == 0 then true else (map("\(.labels.alertname) \(.state)") | join(", ") | error) end'
}

# Prometheus has no active target of job gestor on host $1 (discovery no
# longer lists its task as running).
target_vanished() {
  curl -fsS --max-time 10 "${PROM}/api/v1/targets?state=active" | jq -e --arg host "$1" '
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
  [[ "$(curl -fsS --max-time 10 "${LOGS}/logs?host=${host}&event=cycle&since=${since}&limit=1" \
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
    curl -fsS --max-time 5 "${PROM}/-/ready"
  check_within "Prometheus scrapes gestor on exactly the ${NODES} nodes" 90 gestor_up_on "${HOSTS[@]}"
  check "every gestor target comes from Swarm discovery, labelled with its node" \
    targets_from_discovery
  check_within "Prometheus scrapes the log service" 60 logger_scraped
  govern_checks
  drill
  printf '%d passed, %d failed\n' "${PASSED}" "${FAILED}"
  ((FAILED == 0))
}

main "$@"
