#!/usr/bin/env bash
#
# build-base-image.sh takes its Debian mirror from the host's apt sources:
# one-line files and deb822 files, disabled and commented entries skipped,
# the suite matched exactly (not bookworm-security). Runs in a fixture
# directory standing in for /etc/apt; needs nothing installed.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SCRIPTS_DIR
FAILED=0
WORK="$(mktemp -d /tmp/gestor-apt-mirror.XXXXXX)"
readonly WORK
trap 'rm -rf -- "${WORK}"' EXIT

# shellcheck source-path=SCRIPTDIR source=../build-base-image.sh
source "${SCRIPTS_DIR}/build-base-image.sh"

expect() {
  local want="$1" what="$2" got
  got="$(APT_DIR="${WORK}/apt" apt_mirror bookworm)"
  if [[ "${got}" == "${want}" ]]; then
    printf 'ok   apt mirror: %s\n' "${what}"
  else
    printf 'FAIL apt mirror: %s: expected %q, got %q\n' "${what}" "${want}" "${got}" >&2
    FAILED=1
  fi
}

fresh() {
  rm -rf "${WORK}/apt"
  mkdir -p "${WORK}/apt/sources.list.d"
}

main() {
  fresh
  expect "" "no sources at all: nothing (the script falls back to deb.debian.org)"

  fresh
  cat >"${WORK}/apt/sources.list" <<'SRC'
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main contrib
SRC
  expect http://mirror.example/debian "one-line: options skipped, deb-src and -security ignored"

  fresh
  cat >"${WORK}/apt/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Enabled: no

# a comment between stanzas
Types: deb deb-src
URIs: http://proxy.example:3142/debian http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
SRC
  printf 'deb http://other.example/x nodistro main\n' >"${WORK}/apt/sources.list.d/other.list"
  printf 'deb http://disabled.example/debian bookworm main\n' \
    >"${WORK}/apt/sources.list.d/old.list.disabled"
  expect http://proxy.example:3142/debian "deb822: disabled stanza skipped, first URI taken"

  fresh
  printf 'Types: deb\nURIs: http://last.example/debian\nSuites: bookworm-updates bookworm\n' \
    >"${WORK}/apt/sources.list.d/a.sources"
  expect http://last.example/debian "deb822: last stanza without a trailing blank line"

  ((FAILED == 0))
}

main "$@"
