#!/usr/bin/env bash
# A real apt run proves that a failed DKMS build of the module never fails a
# kernel package's installation, in a fresh root of the host's suite
# (mmdebstrap; dkms but no kernel headers yet):
#   1. kernel_module/dkms-install.sh --no-build registers the module and its
#      kernel hook; apt-get install linux-headers-amd64 must succeed and the
#      hook build and install the module for that kernel;
#   2. the module's source broken (an #error) and registered again, apt-get
#      install --reinstall of those headers must still succeed, the package
#      stay configured ("ii") and the hook say the build failed;
#   3. the contrast: the same broken module with AUTOINSTALL="yes" (dkms's
#      own hook) makes the same apt-get fail and leaves the headers
#      half-configured, which is why dkms.conf has no AUTOINSTALL.
# Closing line: "dkms hook: N passed, M failed". Part of `make test-kernels`.
set -euo pipefail

# shellcheck disable=SC1091 # lib.sh is checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSED=0
FAILED=0
ROOT=""

check() {
  local name="$1"
  shift
  if "$@"; then
    PASSED=$((PASSED + 1))
    echo "ok - ${name}"
  else
    FAILED=$((FAILED + 1))
    echo "not ok - ${name}"
  fi
}

cleanup() {
  [[ -z "${ROOT}" ]] || rm -rf "${ROOT}"
}

# in_root CMD...: CMD in ROOT with /proc mounted (privately).
in_root() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  unshare -m --propagation private sh -c \
    'root="$1"; shift; mount -t proc proc "${root}/proc" && exec chroot "${root}" "$@"' \
    _ "${ROOT}" "$@"
}

# The base root (dkms, make, no headers), cached; each run works on a copy.
base_root() {
  local base="${KM_CACHE}/root-dkms-${KM_HOST_SUITE}"
  if [[ ! -x "${base}/usr/sbin/dkms" ]]; then
    km_apt_install mmdebstrap
    rm -rf "${base}.tmp"
    mmdebstrap --variant=apt --skip=cleanup/apt/lists --include=dkms,make \
      "${KM_HOST_SUITE}" "${base}.tmp" "$(km_mirror)" >"${KM_CACHE}/root-dkms.log" 2>&1 || {
      tail -n 20 "${KM_CACHE}/root-dkms.log" >&2
      return 1
    }
    mv "${base}.tmp" "${base}"
  fi
  ROOT="$(mktemp -d /tmp/gestor-dkms-root.XXXXXX)"
  cp -a "${base}/." "${ROOT}/"
}

# apt_headers LOG [--reinstall]: install the suite's kernel headers in
# ROOT, or reinstall the ones installed (their postinst runs the hooks).
apt_headers() {
  local log="$1"
  if [[ -z "${2:-}" ]]; then
    in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends linux-headers-amd64' >"${log}" 2>&1
  else
    # shellcheck disable=SC2016 # expanded in the root
    in_root sh -c 'pkg="$(dpkg-query -W -f="\${Depends}" linux-headers-amd64 | cut -d" " -f1)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "${pkg}"' \
      >"${log}" 2>&1
  fi
}

headers_status() {
  # shellcheck disable=SC2016 # dpkg-query's format
  in_root sh -c 'pkg="$(dpkg-query -W -f="\${Depends}" linux-headers-amd64 | cut -d" " -f1)"
    dpkg-query -W -f="\${db:Status-Abbrev}" "${pkg}"' | tr -d ' '
}

main() {
  local log kver
  if [[ ${EUID} -ne 0 ]]; then
    err "run as root"
    exit 1
  fi
  trap cleanup EXIT
  base_root
  log="${ROOT}/tmp/apt.log"
  # As in the repository: kernel_module/ beside scripts/lib/common.sh.
  mkdir -p "${ROOT}/tmp/km" "${ROOT}/tmp/scripts/lib"
  cp "${KM_DIR}"/{gestor_containers.c,gc_compat.h,Kbuild,Makefile,dkms.conf} \
    "${KM_DIR}"/{dkms-install.sh,dkms-kernel-hook} "${ROOT}/tmp/km/"
  cp "${KM_REPO}/scripts/lib/common.sh" "${ROOT}/tmp/scripts/lib/"

  # 1. The real module: the hook builds it when the headers come.
  check "dkms-install.sh --no-build registers the module and the hook" \
    in_root /tmp/km/dkms-install.sh --no-build
  check "apt-get install linux-headers-amd64 succeeds" apt_headers "${log}"
  kver="$(sed -n 's/^gestor-containers: built and installed for \(.*\)$/\1/p' "${log}")"
  check "the hook built and installed the module for ${kver:-no kernel}" \
    test -f "${ROOT}/lib/modules/${kver:-none}/updates/dkms/gestor_containers.ko"
  [[ -n "${kver}" ]] || tail -n 20 "${log}" >&2

  # 2. A module that fails to build: the headers still configure.
  in_root dkms remove -m gestor-containers -v 3.0.0 --all >/dev/null 2>&1 || true
  rm -rf "${ROOT}/usr/src/gestor-containers-3.0.0"
  sed -i '1i #error "a build that fails (tests/dkms_hook.sh)"' "${ROOT}/tmp/km/gestor_containers.c"
  in_root /tmp/km/dkms-install.sh --no-build >/dev/null
  check "a failed module build: apt-get install --reinstall of the headers succeeds" \
    apt_headers "${log}" --reinstall
  check "the hook reported the failed build" \
    grep -q "the DKMS build for ${kver} failed" "${log}"
  check "the headers package stays configured (ii)" test "$(headers_status)" = ii

  # 3. The contrast: dkms's own hook with AUTOINSTALL.
  echo 'AUTOINSTALL="yes"' >>"${ROOT}/usr/src/gestor-containers-3.0.0/dkms.conf"
  rm -f "${ROOT}"/etc/kernel/{header_postinst.d,postinst.d}/gestor-containers
  if apt_headers "${log}" --reinstall; then
    check "with AUTOINSTALL the same failure fails apt-get (why dkms.conf has none)" false
  else
    check "with AUTOINSTALL the same failure fails apt-get (why dkms.conf has none)" true
  fi
  echo "headers after the AUTOINSTALL run: $(headers_status)"
  echo "dkms hook: ${PASSED} passed, ${FAILED} failed"
  ((FAILED == 0))
}

main "$@"
