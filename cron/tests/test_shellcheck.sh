#!/usr/bin/env bash
#
# Every script of the generator, its tests and its bench passes shellcheck.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

main() {
  t_init shellcheck
  local -a files
  command -v shellcheck >/dev/null 2>&1 \
    || fail "shellcheck is not installed (Debian: apt-get install shellcheck)"
  mapfile -t files < <(find "${CRON_DIR}" -name '*.sh' -type f | sort)
  if [[ -f "${REPO_ROOT}/bench/cron.sh" ]]; then
    files+=("${REPO_ROOT}/bench/cron.sh")
  fi
  # The helpers the scripts source (err): given as input, so the run without
  # -x follows them too.
  files+=("${REPO_ROOT}/scripts/lib/common.sh")
  ((${#files[@]} >= 8)) || fail "expected at least 8 scripts, found ${#files[@]}"
  # Each file on its own (no -x: sourced files checked as given), then as
  # `make lint` runs it, following sourced files.
  (cd "${REPO_ROOT}" && shellcheck "${files[@]}") || fail "shellcheck reported problems"
  shellcheck -x "${files[@]}" || fail "shellcheck -x reported problems"
  ok "shellcheck clean: ${#files[@]} scripts"
}

main "$@"
