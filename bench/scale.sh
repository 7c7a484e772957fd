#!/usr/bin/env bash
# How gestor's cost grows with the number of containers: cycle time (median)
# and daemon RSS with 10, 100 and 500 running containers, measured in one
# run, plus the cost per container (flat = linear growth).
# Goal: linear, <= 100 ms per cycle at 500.
#   bench/scale.sh            # 10 100 500
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

main() {
  local -a sizes=("$@")
  local n ms rss per first_n="" first_ms=""
  ((${#sizes[@]})) || sizes=(10 100 500)
  trap cleanup EXIT
  build_gestor
  printf '%-11s %-14s %-10s %s\n' containers "cycle (median)" "RSS" "cost of each added container"
  for n in "${sizes[@]}"; do
    grow_to "${n}"
    sleep 2
    read -r ms rss < <(dry_run_cycles "${SCOPE}" "${CYCLES}")
    if [[ -z "${first_n}" ]]; then
      first_n="${n}"
      first_ms="${ms}"
      per="-"
    else
      per="$(printf '%.3f ms' "$(echo "(${ms} - ${first_ms}) / (${n} - ${first_n})" | bc -l)")"
    fi
    printf '%-11s %8.2f ms    %6.1f MiB %s\n' "${n}" "${ms}" "$(echo "${rss} / 1024" | bc -l)" "${per}"
  done
}

main "$@"
