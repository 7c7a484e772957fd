# shellcheck shell=bash
#
# The helpers the repository's shell scripts share. Sourced, not run:
#
#   # shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
#
# (the path from the sourcing script's folder). Messages start with the
# script's name: PROG when the script sets it, else the name it was run as.
# Scripts that cannot reach this file keep their own copy of what they use:
# images/swarm-node/node-engine (copied alone into its image) and the kernel
# module's guest init (runs inside the VM).

# err MESSAGE...: "<script>: MESSAGE" on stderr.
err() {
  printf '%s: %s\n' "${PROG:-${0##*/}}" "$*" >&2
}

# wait_for SECONDS WHAT COMMAND [ARG...]: runs COMMAND, its output hidden,
# until it succeeds, for at most SECONDS seconds (every WAIT_FOR_INTERVAL
# seconds, default 1). On time-out says on stderr what it waited for, runs
# COMMAND once more with its output shown (why it still fails) and returns 1.
wait_for() {
  local timeout="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      err "gave up after ${timeout} s waiting for ${what}"
      "$@" >&2 || true
      return 1
    fi
    sleep "${WAIT_FOR_INTERVAL:-1}"
  done
}

# apt_install_missing PACKAGE...: installs those of the Debian packages that
# dpkg does not list as installed (apt-get, no recommends). Returns 1 with a
# message naming them when one is missing and this is not root.
apt_install_missing() {
  local pkg
  local -a missing=()
  for pkg in "$@"; do
    if [[ "$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null)" != "install ok installed" ]]; then
      missing+=("${pkg}")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if [[ "$(id -u)" -ne 0 ]]; then
    err "missing Debian packages: ${missing[*]} (install them, or run as root)"
    return 1
  fi
  printf '%s: installing %s\n' "${PROG:-${0##*/}}" "${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
}
