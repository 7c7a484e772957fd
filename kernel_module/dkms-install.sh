#!/usr/bin/env bash
# Installs gestor_containers.ko with DKMS: its sources in
# /usr/src/gestor-containers-VERSION, built and installed for the running
# kernel (or KVER), and dkms-kernel-hook as a kernel hook, so that every
# kernel installed later gets it too without a failed build ever failing
# that kernel's installation (see dkms.conf).
#
# Usage (as root): kernel_module/dkms-install.sh [KVER | --no-build]
set -euo pipefail

KM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly KM_DIR
readonly PROG="dkms-install"
# err, shared by the repository's scripts.
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "${KM_DIR}/../scripts/lib/common.sh"

main() {
  local version src hook
  if [[ ${EUID} -ne 0 ]]; then
    err "run as root"
    exit 1
  fi
  version="$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "${KM_DIR}/dkms.conf")"
  src="/usr/src/gestor-containers-${version}"
  if ! dkms status -m gestor-containers -v "${version}" | grep -q .; then
    rm -rf "${src}"
    mkdir -p "${src}"
    cp "${KM_DIR}"/{gestor_containers.c,gc_compat.h,Kbuild,Makefile,dkms.conf} "${src}/"
    dkms add -m gestor-containers -v "${version}"
  fi
  for hook in /etc/kernel/header_postinst.d /etc/kernel/postinst.d; do
    mkdir -p "${hook}"
    sed "s/@VERSION@/${version}/" "${KM_DIR}/dkms-kernel-hook" >"${hook}/gestor-containers"
    chmod 0755 "${hook}/gestor-containers"
  done
  if [[ "${1:-}" != --no-build ]]; then
    dkms install -m gestor-containers -v "${version}" -k "${1:-$(uname -r)}"
  fi
}

main "$@"
