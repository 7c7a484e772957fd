#!/usr/bin/env bash
# How gestor's cost grows with the number of containers: cycle time (median),
# gestor's and dockerd's CPU per cycle, gestor's RSS and its Docker requests
# per cycle with 10, 100, 500 and 1,000 running containers, for both
# inventories on the same containers in one run:
#   list:   a full listing every cycle, no collector cache (the old path)
#   events: Docker's event stream and the collector's cache (the default)
# plus the cost of each added container (flat = linear growth) and the
# speedup. At each size the two run in ROUNDS alternating rounds of CYCLES
# cycles (list first, then events first, ...), so that both see the same
# host load, and each mode's median is over all its cycles. Goals: events
# at 500 at least 3x faster than list, its growth per container at least 3x
# smaller, 0 Docker requests per steady cycle, RSS at 1,000 <= 30 MiB;
# <= 100 ms per cycle at 500.
#   bench/scale.sh            # 10 100 500 1000
#   bench/scale.sh 10 50      # other sizes
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

readonly CYCLES="${CYCLES:-10}"
readonly ROUNDS="${ROUNDS:-3}"
SCOPE="${SCALE_SCOPE:-bench-scale-$$}"
readonly SCOPE

WORK=""

cleanup() {
  remove_containers "${SCOPE}"
  [[ -z "${WORK}" ]] || rm -rf "${WORK}"
}

# grow_to N: starts sleeping stress containers until the scope has N. They
# allocate 1 MiB and sleep, so 500 of them do not load a 2-core host. They
# have no network: a bridge takes at most 1,024 ports, and Debian's engine
# (20.10) deadlocked in its network controller removing 1,000 bridged
# containers at once.
grow_to() {
  local target="$1" have
  have="$("${DOCKER}" ps -q --filter "label=gestor.scope=${SCOPE}" | wc -l)"
  seq "${have}" $((target - 1)) | xargs -r -P 8 -I{} "${DOCKER}" run -d --network none \
    --label "gestor.scope=${SCOPE}" --label gestor.managed=true --label gestor.type=ram \
    --name "ram-scale-${SCOPE}-{}" "${STRESS_IMAGE}" \
    stress --vm 1 --vm-bytes 1M --vm-hang 0 >/dev/null
}

# per_container MS FIRST_MS N FIRST_N: ms each added container costs.
per_container() {
  if [[ "$4" == "$3" ]]; then
    printf -- '-'
  else
    printf '%.3f' "$(echo "($1 - $2) / ($3 - $4)" | bc -l)"
  fi
}

# one_round MODE OUT: one round of gestor with MODE's inventory (list or
# events); its cycle durations are appended to OUT.ms, its other figures (a
# line) to OUT.
one_round() {
  local -a flags
  case "$1" in
    list) flags=(--inventory list --procfs-cache=false) ;;
    events) flags=(--inventory events --procfs-cache=true --resync-every 1000) ;;
  esac
  DRY_RUN_DURATIONS="$2.ms" dry_run_cycles "${SCOPE}" "${CYCLES}" "${flags[@]}" >>"$2"
}

# summary OUT: the mode's figures over its rounds: median cycle, the largest
# RSS, and the mean requests and CPU per cycle.
summary() {
  printf '%s %s\n' "$(median <"$1.ms")" \
    "$(awk '{ if ($2 > rss) rss = $2; r += $3; g += $4; d += $5 }
      END { printf "%d %.2f %.2f %.2f", rss, r / NR, g / NR, d / NR }' "$1")"
}

main() {
  local -a sizes=("$@")
  local n r lms lrss lreq lcpu ldcpu ems erss ereq ecpu edcpu
  local first_n="" first_l="" first_e=""
  ((${#sizes[@]})) || sizes=(10 100 500 1000)
  WORK="$(mktemp -d)"
  trap cleanup EXIT
  build_gestor
  printf '%-6s | %-55s | %-55s | %s\n' "" "list, no cache (old path)" \
    "events + collector cache (default)" ""
  printf '%-6s | %-9s %-9s %-10s %-7s %-8s %-8s| %-9s %-9s %-10s %-7s %-8s %-8s| %s\n' \
    containers cycle "CPU" "dockerd" "RSS" "req/cyc" "ms/added" \
    cycle "CPU" "dockerd" "RSS" "req/cyc" "ms/added" speedup
  for n in "${sizes[@]}"; do
    grow_to "${n}"
    rm -f "${WORK}"/*
    for ((r = 0; r < ROUNDS; r++)); do
      if ((r % 2 == 0)); then
        one_round list "${WORK}/list"
        one_round events "${WORK}/events"
      else
        one_round events "${WORK}/events"
        one_round list "${WORK}/list"
      fi
    done
    read -r lms lrss lreq lcpu ldcpu < <(summary "${WORK}/list")
    read -r ems erss ereq ecpu edcpu < <(summary "${WORK}/events")
    if [[ -z "${first_n}" ]]; then
      first_n="${n}"
      first_l="${lms}"
      first_e="${ems}"
    fi
    printf '%-6s | %6.2f ms %5.1f ms %6.1f ms %4.1f MiB %-8.2f %-8s| %6.2f ms %5.1f ms %6.1f ms %4.1f MiB %-8.2f %-8s| %.1fx\n' \
      "${n}" "${lms}" "${lcpu}" "${ldcpu}" "$(echo "${lrss} / 1024" | bc -l)" "${lreq}" \
      "$(per_container "${lms}" "${first_l}" "${n}" "${first_n}")" \
      "${ems}" "${ecpu}" "${edcpu}" "$(echo "${erss} / 1024" | bc -l)" "${ereq}" \
      "$(per_container "${ems}" "${first_e}" "${n}" "${first_n}")" \
      "$(echo "${lms} / ${ems}" | bc -l)"
  done
  printf 'cycle: median over %d rounds x %d cycles; CPU: gestor (all its threads) and dockerd per cycle, mean\n' \
    "${ROUNDS}" "${CYCLES}"
}

main "$@"
