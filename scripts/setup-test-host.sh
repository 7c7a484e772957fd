#!/usr/bin/env bash
# Installs and starts what `make test` needs on a Debian/Ubuntu host, as root:
# Debian packages, a running Docker engine and the locally built images.
# Idempotent: a second run only checks.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly REPO_ROOT
readonly PACKAGES=(
  docker.io docker-compose debootstrap
  prometheus prometheus-alertmanager shellcheck cron busybox-static qemu-system-x86 cpio
  chromium python3 python3-venv python3-jsonschema curl jq bc make gcc libc6-dev kmod
  dkms xz-utils
)

readonly PROG="setup-test-host"
# err and the other helpers the scripts share.
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  apt_install_missing "${PACKAGES[@]}"
  if ! command -v cargo >/dev/null 2>&1; then
    err "cargo not found: install Rust (https://rustup.rs) and re-run"
    return 1
  fi
  "${REPO_ROOT}/scripts/build-images.sh"
}

main "$@"
