#!/usr/bin/env bash
#
# 20 runs of 10 give 200 distinct names and all four types. Each run's
# containers (told apart by an extra run label) are checked, recorded and
# removed while the next run goes on, so the shared 2-core host carries at
# most 20 of them. docker itself only refuses duplicates among containers
# that exist: the set of recorded names is what proves uniqueness across
# runs. Small caps keep the load low.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

readonly RUNS=20
readonly PER_RUN=10

main() {
  t_init many_runs
  local run status names_file="${WORK}/names" distinct type count rm_pid=""
  local -a ids
  : >"${names_file}"
  for ((run = 1; run <= RUNS; run++)); do
    status=0
    gen -n "${PER_RUN}" --quiet --jobs 6 --label "gestor.test-run=${run}" \
      "${SMALL[@]}" || status=$?
    assert_eq 0 "${status}" "exit status of run ${run}"
    mapfile -t ids < <(scoped_ids "gestor.test-run=${run}")
    assert_eq "${PER_RUN}" "${#ids[@]}" "containers made by run ${run}"
    "${DOCKER}" inspect --format '{{.Name}} {{index .Config.Labels "gestor.type"}}' \
      "${ids[@]}" >>"${names_file}"
    if [[ -n "${rm_pid}" ]]; then
      wait "${rm_pid}" || fail "could not remove the containers of run $((run - 1))"
    fi
    "${DOCKER}" rm -f "${ids[@]}" >/dev/null &
    rm_pid=$!
  done
  wait "${rm_pid}" || fail "could not remove the containers of the last run"
  distinct="$(cut -d' ' -f1 "${names_file}" | sort -u | grep -c .)"
  assert_eq $((RUNS * PER_RUN)) "${distinct}" "distinct names over ${RUNS} runs"
  ok "${RUNS} runs gave ${distinct} distinct names"
  for type in cpu ram io disk; do
    count="$(grep -c " ${type}\$" "${names_file}" || true)"
    ((count > 0)) || fail "type ${type} never drawn in ${distinct} containers"
    printf '     %-4s %3d\n' "${type}" "${count}"
  done
  local name
  while read -r name type; do
    [[ "${name}" =~ ^/(cpu|ram|io|disk)-[0-9a-f]{12}$ && "${name:1}" == "${type}-"* ]] \
      || fail "name '${name}' does not match its type '${type}'"
  done <"${names_file}"
  ok "all four types appear; every name is <type>-<12 hex> of its own type"
  assert_eq "${RUNS}" "$(grep -c 'created=10 failed=0' "${WORK}/gen.log")" \
    "summary lines in the log"
  ok "${RUNS} summary lines logged"
}

main "$@"
