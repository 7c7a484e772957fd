#!/usr/bin/env bash
#
# One run with the default count and caps creates exactly 10 running
# containers with unique `<type>-<12 hex>` names, the gestor labels, the stress
# command of their type (checked with docker inspect and docker top), the
# resource caps, no ENTRYPOINT, and a one-line summary in the log.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

INSPECT_FORMAT='{{.Name}}|{{index .Config.Labels "gestor.managed"}}'
INSPECT_FORMAT+='|{{index .Config.Labels "gestor.type"}}|{{index .Config.Labels "gestor.scope"}}'
INSPECT_FORMAT+='|{{json .Config.Cmd}}|{{json .Config.Entrypoint}}|{{.State.Status}}'
INSPECT_FORMAT+='|{{.RestartCount}}|{{.HostConfig.NanoCpus}}|{{.HostConfig.Memory}}'
readonly INSPECT_FORMAT

expected_cmd() {
  case "$1" in
    cpu) echo '["stress","--cpu","1"]' ;;
    ram) echo '["stress","--vm","1","--vm-bytes","64M","--vm-keep"]' ;;
    io) echo '["stress","--io","1"]' ;;
    disk) echo '["stress","--hdd","1","--hdd-bytes","64M"]' ;;
    *) return 1 ;;
  esac
}

main() {
  t_init one_run
  local out status=0 id line name managed type scope cmd entry state restarts
  local cpus mem top
  local -a ids printed seen=()
  # No count: the default (10) is under test.
  out="$(gen 2>&1)" || status=$?
  assert_eq 0 "${status}" "exit status of one run (output: ${out})"
  mapfile -t ids < <(scoped_ids)
  assert_eq 10 "${#ids[@]}" "containers created by one run"
  mapfile -t printed < <(sed -n 's/^created //p' <<<"${out}" | sort)
  assert_eq 10 "${#printed[@]}" "names printed on stdout"
  # Let a container that dies at start-up show it.
  sleep 2
  while IFS= read -r line; do
    IFS='|' read -r name managed type scope cmd entry state restarts cpus mem <<<"${line}"
    name="${name#/}"
    [[ "${name}" =~ ^(cpu|ram|io|disk)-[0-9a-f]{12}$ ]] \
      || fail "name '${name}' is not <type>-<12 hex>"
    assert_eq "${name%%-*}" "${type}" "gestor.type label of ${name}"
    assert_eq true "${managed}" "gestor.managed label of ${name}"
    assert_eq "${SCOPE}" "${scope}" "scope label of ${name}"
    assert_eq "$(expected_cmd "${type}")" "${cmd}" "command of ${name}"
    assert_eq null "${entry}" "entrypoint of ${name}"
    assert_eq running "${state}" "state of ${name}"
    assert_eq 0 "${restarts}" "restart count of ${name}"
    assert_eq 250000000 "${cpus}" "--cpus cap (NanoCpus) of ${name}"
    assert_eq 134217728 "${mem}" "--memory cap of ${name}"
    seen+=("${name}")
  done < <("${DOCKER}" inspect --format "${INSPECT_FORMAT}" "${ids[@]}")
  assert_eq 10 "$(printf '%s\n' "${seen[@]}" | sort -u | grep -c .)" "unique names"
  assert_eq "$(printf '%s\n' "${printed[@]}")" "$(printf '%s\n' "${seen[@]}" | sort)" \
    "names printed vs names in docker"
  ok "10 running containers, unique names, labels, commands and caps match"

  for id in "${ids[@]}"; do
    top="$("${DOCKER}" top "${id}" -o pid,args)"
    [[ "${top}" == *"stress --"* ]] || fail "no stress process in ${id}: ${top}"
  done
  ok "a stress process runs in each container"

  local re='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z gestor-generator\[[0-9]+\]: '
  re+='created=10 failed=0 requested=10 duration=[0-9]+\.[0-9]{3}s image=(.*)$'
  line="$(tail -n 1 "${WORK}/gen.log")"
  [[ "${line}" =~ ${re} && "${BASH_REMATCH[1]}" == "${TEST_IMAGE}" ]] \
    || fail "summary line not as expected: ${line}"
  assert_eq 1 "$(grep -c . "${WORK}/gen.log")" "lines in the log after one run"
  ok "one summary line: ${line#* }"

  # --print-names: stdout is the created names and nothing else, so a
  # program counts what this run made without listing containers (a listing
  # races with gestor removing them).
  remove_scoped
  local names
  names="$(gen -n 3 "${SMALL[@]}" --print-names 2>"${WORK}/names.err")" \
    || fail "--print-names run failed: $(cat "${WORK}/names.err")"
  assert_eq "$("${DOCKER}" ps -a --filter "label=gestor.scope=${SCOPE}" --format '{{.Names}}' | sort)" \
    "$(sort <<<"${names}")" "names printed by --print-names vs names in docker"
  assert_eq 3 "$(grep -cE '^(cpu|ram|io|disk)-[0-9a-f]{12}$' <<<"${names}")" "lines of --print-names"
  ok "--print-names prints exactly the 3 names made, one per line"
}

main "$@"
