#!/usr/bin/env bash
#
# install.sh / uninstall.sh on a scratch cron.d and unit directory: the file's
# entries, PATH, absolute script path, options passed through with their
# quoting intact (the installed command line is run through /bin/sh), file
# mode, re-install, other rates, refusals, uninstall touching nothing else;
# and the systemd units (checked with systemd-analyze verify when present).
# The real cron daemon is exercised by test_cron.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

readonly INSTALL="${CRON_DIR}/install.sh"
readonly UNINSTALL="${CRON_DIR}/uninstall.sh"
# A label value with a space, a quote and a dollar: quoting must survive.
readonly ODD_LABEL="gestor.note=it's \$HOME \"x\""

# Prints the command of cron entry $2 (1-based) in cron file $1.
cron_command() {
  grep -E '^[*0-9/]+ \* \* \* \* ' "$1" | sed -n "$2p" | cut -d' ' -f7-
}

checksums() {
  find "$1" -maxdepth 1 -type f ! -name gestor-generator -print0 | sort -z \
    | xargs -0 -r sha256sum
}

test_cron_file() {
  local dir="${WORK}/cron.d" file out cmd entries dry
  mkdir -p "${dir}"
  file="${dir}/gestor-generator"
  printf '# another package\n*/5 * * * * root true\n' >"${dir}/other-package"
  printf 'SHELL=/bin/sh\n' >"${dir}/zz-other"
  local before
  before="$(checksums "${dir}")"

  out="$(GESTOR_CRON_FILE="${file}" "${INSTALL}" -n 3 --image "${TEST_IMAGE}" \
    --label "gestor.scope=${SCOPE}" --label "${ODD_LABEL}" --log-file "${WORK}/gen.log" 2>&1)" \
    || fail "install.sh failed: ${out}"
  [[ -f "${file}" ]] || fail "install.sh did not write ${file}"
  assert_eq 644 "$(stat -c %a "${file}")" "mode of the cron file"
  assert_eq "$(id -un)" "$(stat -c %U "${file}")" "owner of the cron file"
  grep -qx 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "${file}" \
    || fail "no explicit PATH line in ${file}"
  grep -qx 'SHELL=/bin/sh' "${file}" || fail "no SHELL line in ${file}"
  entries="$(grep -cE '^\* \* \* \* \* root ' "${file}")"
  assert_eq 2 "${entries}" "entries in the cron file"
  cmd="$(cron_command "${file}" 1)"
  assert_eq "${GEN} --quiet -n 3" "${cmd%% --image*}" "first entry runs the script by absolute path"
  [[ "${GEN}" == /* ]] || fail "script path ${GEN} is not absolute"
  assert_eq "sleep 30 && ${cmd}" "$(cron_command "${file}" 2)" "second entry is delayed 30 s"
  ok "cron file: 2 entries (one 'sleep 30 &&'), SHELL, PATH, absolute path, mode 644"

  # The installed command line, as /bin/sh parses it, passes every option on.
  dry="$(env -i PATH=/usr/bin:/bin sh -c "${cmd} --dry-run" 2>&1)" \
    || fail "the installed command failed under sh: ${dry}"
  assert_eq 3 "$(grep -c ' run --detach ' <<<"${dry}")" "containers in the installed command"
  assert_contains "${dry}" "--label gestor.scope=${SCOPE}" "installed command"
  assert_contains "${dry}" "$(printf -- '--label %q' "${ODD_LABEL}")" "odd label survives quoting"
  assert_contains "${dry}" " ${TEST_IMAGE} stress --" "installed command's image"
  ok "options pass through cron's /bin/sh intact (label with space, quote, \$)"

  # Re-install replaces; other rates give other entries.
  GESTOR_CRON_FILE="${file}" "${INSTALL}" --every 15 -n 1 >/dev/null 2>&1 \
    || fail "re-install with --every 15 failed"
  assert_eq 4 "$(grep -cE '^\* \* \* \* \* root ' "${file}")" "entries for every 15 s"
  grep -q '^\* \* \* \* \* root sleep 45 && ' "${file}" || fail "no 'sleep 45' entry"
  GESTOR_CRON_FILE="${file}" "${INSTALL}" --every 300 >/dev/null 2>&1 \
    || fail "re-install with --every 300 failed"
  grep -qE '^\*/5 \* \* \* \* root /' "${file}" || fail "no */5 entry: $(cat "${file}")"
  assert_eq 1 "$(grep -cE '^[*0-9/]+ \* \* \* \* ' "${file}")" "entries for every 300 s"
  ok "re-install replaces the file; --every 15 gives 4 entries, --every 300 '*/5'"

  cp "${file}" "${WORK}/saved"
  local status=0
  GESTOR_CRON_FILE="${file}" "${INSTALL}" --every 7 >/dev/null 2>&1 || status=$?
  assert_eq 2 "${status}" "exit status for --every 7"
  status=0
  GESTOR_CRON_FILE="${file}" "${INSTALL}" -n lots >/dev/null 2>&1 || status=$?
  assert_eq 2 "${status}" "exit status for a bad generator option"
  status=0
  GESTOR_CRON_FILE="${file}" "${INSTALL}" --label 'a=100%' >/dev/null 2>&1 || status=$?
  assert_eq 2 "${status}" "exit status for a % in an option"
  cmp -s "${file}" "${WORK}/saved" || fail "a refused install changed ${file}"
  status=0
  GESTOR_CRON_FILE="${dir}/other-package" "${INSTALL}" >/dev/null 2>&1 || status=$?
  assert_eq 1 "${status}" "exit status when the destination is another package's file"
  ok "refused: --every 7, bad options, '%'; a foreign file is not overwritten"

  out="$(GESTOR_CRON_FILE="${file}" "${UNINSTALL}" 2>&1)" || fail "uninstall failed: ${out}"
  [[ ! -e "${file}" ]] || fail "uninstall left ${file}"
  assert_eq "${before}" "$(checksums "${dir}")" "other files after uninstall"
  assert_eq "other-package zz-other" "$(find "${dir}" -mindepth 1 -printf '%f\n' | sort | xargs)" \
    "files left in cron.d"
  GESTOR_CRON_FILE="${file}" "${UNINSTALL}" >/dev/null || fail "second uninstall failed"
  status=0
  GESTOR_CRON_FILE="${dir}/other-package" "${UNINSTALL}" >/dev/null 2>&1 || status=$?
  assert_eq 1 "${status}" "exit status when asked to remove another package's file"
  assert_eq "${before}" "$(checksums "${dir}")" "other files after refused uninstall"
  ok "uninstall removes only its file (twice is fine); refuses a foreign file"
}

test_default_paths() {
  local out
  out="$("${INSTALL}" --print -n 2 2>&1)" || fail "install.sh --print failed: ${out}"
  assert_eq "# /etc/cron.d/gestor-generator" "$(head -n 1 <<<"${out}")" "default cron file"
  out="$("${INSTALL}" --print --systemd 2>&1)" || fail "install.sh --print --systemd failed"
  assert_contains "${out}" "# /etc/systemd/system/gestor-generator.timer" "default unit dir"
  ok "defaults: /etc/cron.d/gestor-generator, /etc/systemd/system"
}

test_systemd_units() {
  local dir="${WORK}/units" out service timer
  mkdir -p "${dir}"
  out="$(GESTOR_UNIT_DIR="${dir}" "${INSTALL}" --systemd -n 2 --image "${TEST_IMAGE}" \
    --label "${ODD_LABEL}" 2>&1)" || fail "install.sh --systemd failed: ${out}"
  service="${dir}/gestor-generator.service"
  timer="${dir}/gestor-generator.timer"
  [[ -f "${service}" && -f "${timer}" ]] || fail "units not written: $(ls "${dir}")"
  grep -qx 'OnUnitActiveSec=30s' "${timer}" || fail "timer lacks OnUnitActiveSec=30s"
  grep -qx 'AccuracySec=1s' "${timer}" || fail "timer lacks AccuracySec=1s"
  grep -qx "ExecStart=${GEN} -n 2 --image ${TEST_IMAGE} --label \"gestor.note=it's \$\$HOME \\\\\"x\\\\\"\"" \
    "${service}" || fail "ExecStart not as expected: $(grep ExecStart "${service}")"
  grep -qx 'Type=oneshot' "${service}" || fail "service is not Type=oneshot"
  if command -v systemd-analyze >/dev/null 2>&1; then
    out="$(systemd-analyze verify "${timer}" "${service}" 2>&1)" \
      || fail "systemd-analyze verify: ${out}"
    [[ -z "${out}" ]] || fail "systemd-analyze verify warned: ${out}"
    ok "systemd units: OnUnitActiveSec=30s, AccuracySec=1s, ExecStart quoted; verify clean"
  else
    ok "systemd units written (systemd-analyze absent: not verified)"
  fi
  GESTOR_UNIT_DIR="${dir}" "${INSTALL}" --systemd --every 7 >/dev/null \
    || fail "systemd accepts any period; --every 7 was refused"
  grep -qx 'OnUnitActiveSec=7s' "${timer}" || fail "timer lacks OnUnitActiveSec=7s"
  touch "${dir}/unrelated.service"
  GESTOR_UNIT_DIR="${dir}" "${UNINSTALL}" --systemd >/dev/null || fail "uninstall --systemd"
  assert_eq "unrelated.service" "$(ls "${dir}")" "unit dir after uninstall --systemd"
  ok "uninstall --systemd removes both units and nothing else"
}

main() {
  t_init install
  test_cron_file
  test_default_paths
  test_systemd_units
}

main "$@"
