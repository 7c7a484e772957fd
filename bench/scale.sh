#!/usr/bin/env bash
# How gestor's cost grows with the number of containers: cycle time (median),
# daemon RSS and Docker requests per cycle with 10, 100, 500 and 1,000
# running containers, for both inventories on the same containers in one run:
#   list:   a full listing every cycle, no collector cache (the old path)
#   events: Docker's event stream and the collector's cache (the default)
# plus the cost of each added container (flat = linear growth) and the
# speedup. Goals: events at 500 at least 3x faster than list, its growth per
# container at least 3x smaller, 0 Docker requests per steady cycle, RSS at
# 1,000 <= 30 MiB; <= 100 ms per cycle at 500.
#   bench/scale.sh            # 10 100 500 1000
#   bench/scale.sh 10 50      # other sizes
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

readonly CYCLES="${CYCLES:-15}"
SCOPE="bench-scale-$$"
readonly SCOPE

cleanup() {
  remove_containers "${SCOPE}"
}

# grow_to N: starts sleeping stress containers until the scope has N. They
# allocate 1 MiB and sleep, so 500 of them do not load a 2-core host.
grow_to() {
  local target="$1" have
  have="$("${DOCKER}" ps -q --filter "label=gestor.scope=${SCOPE}" | wc -l)"
  seq "${have}" $((target - 1)) | xargs -r -P 8 -I{} "${DOCKER}" run -d \
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

main() {
  local -a sizes=("$@")
  local n lms lrss lreq ems erss ereq first_n="" first_l="" first_e=""
  ((${#sizes[@]})) || sizes=(10 100 500 1000)
  trap cleanup EXIT
  build_gestor
  printf '%-6s | %-38s | %-38s | %s\n' "" "list, no cache (old path)" \
    "events + collector cache (default)" ""
  printf '%-6s | %-9s %-9s %-8s %-9s | %-9s %-9s %-8s %-9s | %s\n' containers \
    cycle RSS "req/cyc" "ms/added" cycle RSS "req/cyc" "ms/added" speedup
  for n in "${sizes[@]}"; do
    grow_to "${n}"
    read -r lms lrss lreq < <(dry_run_cycles "${SCOPE}" "${CYCLES}" \
      --inventory list --procfs-cache=false)
    read -r ems erss ereq < <(dry_run_cycles "${SCOPE}" "${CYCLES}" \
      --inventory events --procfs-cache=true --resync-every 1000)
    if [[ -z "${first_n}" ]]; then
      first_n="${n}"
      first_l="${lms}"
      first_e="${ems}"
    fi
    printf '%-6s | %6.2f ms %5.1f MiB %-8.2f %-9s | %6.2f ms %5.1f MiB %-8.2f %-9s | %.1fx\n' "${n}" \
      "${lms}" "$(echo "${lrss} / 1024" | bc -l)" "${lreq}" \
      "$(per_container "${lms}" "${first_l}" "${n}" "${first_n}")" \
      "${ems}" "$(echo "${erss} / 1024" | bc -l)" "${ereq}" \
      "$(per_container "${ems}" "${first_e}" "${n}" "${first_n}")" \
      "$(echo "${lms} / ${ems}" | bc -l)"
  done
}

main "$@"
