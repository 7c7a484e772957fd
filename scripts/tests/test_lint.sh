#!/usr/bin/env bash
#
# scripts/lint.sh finds the shell scripts it hands to shellcheck by name and
# by #! line, in a scratch git checkout: *.sh and *.bash files, and files
# without those names whose first line runs bash, sh, dash or ksh (directly
# or through env); not Python, not data, not a symlink, not ignored files.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SCRIPTS_DIR
WORK="$(mktemp -d /tmp/gestor-lint-test.XXXXXX)"
readonly WORK
trap 'rm -rf -- "${WORK}"' EXIT

# shellcheck source-path=SCRIPTDIR source=../lint.sh
source "${SCRIPTS_DIR}/lint.sh"

main() {
  local got want
  git init -q "${WORK}"
  mkdir -p "${WORK}/.ci" "${WORK}/bin" "${WORK}/data"
  printf 'echo plain\n' >"${WORK}/lib.sh"
  printf 'echo bash\n' >"${WORK}/bin/tool.bash"
  printf '#!/usr/bin/env bash\nmake test\n' >"${WORK}/.ci/run"
  printf '#!/bin/sh\nexit 0\n' >"${WORK}/bin/init"
  printf '#!/usr/bin/env python3\nprint(1)\n' >"${WORK}/bin/tool.py"
  printf '#!/usr/bin/bashful\n' >"${WORK}/bin/not-a-shell"
  printf '\x89PNG\r\n\x1a\n\0\0#!/bin/sh\n' >"${WORK}/data/image.png"
  printf '#!/bin/bash\n' >"${WORK}/data/ignored.sh"
  printf 'data/ignored.sh\n' >"${WORK}/.gitignore"
  ln -s ../.ci/run "${WORK}/bin/run-link"
  git -C "${WORK}" add -A
  printf '#!/bin/dash\n' >"${WORK}/bin/new-untracked"
  got="$(shell_files "${WORK}" | tr '\n' ' ')"
  want=".ci/run bin/init bin/new-untracked bin/tool.bash lib.sh "
  if [[ "${got}" == "${want}" ]]; then
    printf 'ok   lint.sh: shell scripts found by name and #! line, nothing else\n'
  else
    printf 'FAIL lint.sh: shell files: expected %q, got %q\n' "${want}" "${got}" >&2
    return 1
  fi
}

main "$@"
