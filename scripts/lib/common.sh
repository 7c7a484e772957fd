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
