#!/usr/bin/env bash
#
# The lint steps of `make lint` other than cargo's, over the whole repository
# (the pre-commit hooks run the same):
#
#   scripts/lint.sh [STEP...]     (default: every step, in this order)
#
#   ruff          ruff check, with the root ruff.toml
#   ruff-format   ruff format --check
#
# ruff is the one pinned in scripts/requirements-lint.txt, installed into
# .venv at the root on first use (scripts/ensure-venv.sh).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly VENV="${REPO_ROOT}/.venv"
readonly STEPS=(ruff ruff-format)

readonly PROG="lint"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ensure_tools() {
  "${REPO_ROOT}/scripts/ensure-venv.sh" "${VENV}" "${REPO_ROOT}/scripts/requirements-lint.txt"
}

run_step() {
  case "$1" in
    ruff) ensure_tools && "${VENV}/bin/ruff" check . ;;
    ruff-format) ensure_tools && "${VENV}/bin/ruff" format --check . ;;
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
    echo "lint: ${step}"
    run_step "${step}" || failed+=("${step}")
  done
  if ((${#failed[@]} > 0)); then
    err "failed: ${failed[*]}"
    return 1
  fi
}

main "$@"
