#!/usr/bin/env bash
#
# The lint steps of `make lint` other than cargo's, over the whole repository
# (the pre-commit hooks run the same):
#
#   scripts/lint.sh [STEP...]     (default: every step, in this order)
#
#   * ruff          ruff check, with the root ruff.toml
#   * ruff-format   ruff format --check
#   * shellcheck    shellcheck -x over every shell script git tracks: the files
#                   named *.sh or *.bash and those whose #! line runs bash, sh,
#                   dash or ksh (`scripts/lint.sh shell-files` lists them)
#   * layers        scripts/check_layers.py: no import circle and no arrow
#                   back up in src/ and logger/app
#
# ruff is the one pinned in scripts/requirements-lint.txt, installed into
# .venv at the root on first use (scripts/ensure-venv.sh); shellcheck is
# Debian's, installed when missing (as root).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly VENV="${REPO_ROOT}/.venv"
readonly STEPS=(ruff ruff-format shellcheck layers)
readonly SHEBANG='^#![[:space:]]*(/usr/bin/env[[:space:]]+)?(/usr)?(/bin/)?(bash|sh|dash|ksh)([[:space:]]|$)'

readonly PROG="lint"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ensure_tools() {
  "${REPO_ROOT}/scripts/ensure-venv.sh" "${VENV}" "${REPO_ROOT}/scripts/requirements-lint.txt"
}

# Every shell script git tracks (or would: new files not ignored) in the
# checkout at $1, one per line, sorted, relative to it.
shell_files() {
  local dir="$1" file first
  while IFS= read -r -d '' file; do
    [[ -f "${dir}/${file}" && ! -L "${dir}/${file}" ]] || continue
    case "${file}" in
      *.sh | *.bash) printf '%s\n' "${file}" ;;
      *)
        first=""
        IFS= read -r first < <(head -c 200 "${dir}/${file}" | tr -d '\0') || true
        if [[ "${first}" =~ ${SHEBANG} ]]; then
          printf '%s\n' "${file}"
        fi
        ;;
    esac
  done < <(git -C "${dir}" ls-files -z --cached --others --exclude-standard) | sort -u
}

run_shellcheck() {
  local -a files
  apt_install_missing shellcheck
  mapfile -t files < <(shell_files "${REPO_ROOT}")
  if ((${#files[@]} == 0)); then
    err "no shell script found (is this a git checkout?)"
    return 1
  fi
  shellcheck -x "${files[@]}" && echo "shellcheck: ${#files[@]} scripts clean"
}

run_step() {
  case "$1" in
    ruff) ensure_tools && "${VENV}/bin/ruff" check . ;;
    ruff-format) ensure_tools && "${VENV}/bin/ruff" format --check . ;;
    shellcheck) run_shellcheck ;;
    layers) python3 "${REPO_ROOT}/scripts/check_layers.py" ;;
    shell-files) shell_files "${REPO_ROOT}" ;;
    *)
      err "unknown step '$1' (steps: ${STEPS[*]})"
      return 2
      ;;
  esac
}

# Runs every step asked for, even after one fails, so one run shows every
# finding; fails if any step did.
main() {
  local step
  local -a steps=("$@") failed=()
  ((${#steps[@]} > 0)) || steps=("${STEPS[@]}")
  cd "${REPO_ROOT}"
  for step in "${steps[@]}"; do
    [[ "${step}" == shell-files ]] || echo "lint: ${step}"
    run_step "${step}" || failed+=("${step}")
  done
  if ((${#failed[@]} > 0)); then
    err "failed: ${failed[*]}"
    return 1
  fi
}

# Runs when executed, not when sourced (scripts/tests/test_lint.sh sources it
# for shell_files).
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
