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
