#!/usr/bin/env bash
# Test suite of kernel_module/ (`make test-kernel`): checkpatch, a build with
# no warnings, a DKMS build, then a real Debian kernel booted in qemu (TCG)
# with the module loaded, whose output is validated against
# schema/sysinfo.schema.json, compared with /proc and parsed by
# `gestor snapshot` (tests/check_output.py). Needs root; installs what it
# needs when missing. GESTOR_KM_KEEP=1 keeps the work directory.
set -euo pipefail

# shellcheck disable=SC1091 # lib.sh is checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Downloads kept between runs (checkpatch.pl from linux-source).
readonly KM_CACHE="${GESTOR_KM_CACHE:-/tmp/gestor-kernel-cache}"
readonly GUEST_CPUS=2
readonly GUEST_MEM_MIB=1536
PASSED=0
FAILED=0
WORK=""

cleanup() {
  if [[ -n "${WORK}" && "${GESTOR_KM_KEEP:-0}" != 1 ]]; then
    rm -rf "${WORK}"
  elif [[ -n "${WORK}" ]]; then
    log "work directory kept: ${WORK}"
  fi
}

# check NAME CMD...: run CMD, count and print the result.
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

# checkpatch.pl ships only inside Debian's linux-source tarball: extract it
# once into the cache.
checkpatch() {
  local series dir tmp
  series="$(cut -d. -f1,2 <<<"${KM_KVER}")"
  dir="${KM_CACHE}/checkpatch-${series}"
  if [[ ! -f "${dir}/checkpatch.pl" ]]; then
    log "fetching checkpatch.pl from linux-source-${series}"
    mkdir -p "${KM_CACHE}"
    tmp="$(mktemp -d "${KM_CACHE}/dl.XXXXXX")"
    if ! (cd "${tmp}" && apt-get download -q "linux-source-${series}" >/dev/null 2>&1); then
      apt-get update -qq >/dev/null 2>&1 || true
      (cd "${tmp}" && apt-get download -q "linux-source-${series}" >/dev/null 2>&1) || {
        err "cannot download linux-source-${series}"
        rm -rf "${tmp}"
        return 1
      }
    fi
    dpkg-deb --fsys-tarfile "${tmp}"/linux-source-*.deb \
      | tar -x -C "${tmp}" "./usr/src/linux-source-${series}.tar.xz"
    tar -xJf "${tmp}/usr/src/linux-source-${series}.tar.xz" -C "${tmp}" \
      --wildcards '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
      '*/scripts/const_structs.checkpatch'
    mkdir -p "${dir}"
    cp "${tmp}/linux-source-${series}/scripts/"{checkpatch.pl,spelling.txt,const_structs.checkpatch} \
      "${dir}/"
    rm -rf "${tmp}"
  fi
  perl "${dir}/checkpatch.pl" --no-tree --strict -f "${KM_DIR}/gestor_containers.c" \
    >"${WORK}/checkpatch.log" 2>&1 || {
    cat "${WORK}/checkpatch.log" >&2
    return 1
  }
}

# dkms add + build against the installed headers, in a private mount
# namespace so that the MOK dkms generates on first use stays out of the
# host's /var/lib/dkms.
dkms_build() {
  local version src tree ko
  version="$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "${KM_DIR}/dkms.conf")"
  src="${WORK}/dkms/src"
  tree="${WORK}/dkms/tree"
  mkdir -p "${src}/gestor-containers-${version}" "${tree}"
  cp "${KM_DIR}"/{gestor_containers.c,Kbuild,Makefile,dkms.conf} \
    "${src}/gestor-containers-${version}/"
  # shellcheck disable=SC2016 # expanded by the inner bash
  if ! unshare -m --propagation private bash -c '
      set -e
      mount -t tmpfs tmpfs /var/lib/dkms
      dkms --dkmstree "$1" --sourcetree "$2" add -m gestor-containers -v "$3"
      dkms --dkmstree "$1" --sourcetree "$2" build -m gestor-containers \
        -v "$3" -k "$4"' _ "${tree}" "${src}" "${version}" "${KM_KVER}" \
    >"${WORK}/dkms.log" 2>&1; then
    cat "${WORK}/dkms.log" >&2
    return 1
  fi
  ko="${tree}/gestor-containers/${version}/${KM_KVER}/x86_64/module/gestor_containers.ko"
  [[ -f "${ko}" && "$(modinfo -F vermagic "${ko}")" == "${KM_KVER} "* ]]
}

# The daemon's parser, built when missing (`make test` builds it first).
# Prints only the binary's path.
gestor_binary() {
  local bin="${KM_REPO}/target/release/gestor"
  if [[ ! -x "${bin}" ]] && command -v cargo >/dev/null; then
    log "building gestor (cargo build --release)" >&2
    (cd "${KM_REPO}" && cargo build --release -q) >&2 || true
  fi
  [[ -x "${bin}" ]] && echo "${bin}"
}

guest_checks() {
  local gestor
  local -a args=(--results "${WORK}/vm/out" --schema "${KM_REPO}/schema/sysinfo.schema.json"
    --cpus "${GUEST_CPUS}")
  if gestor="$(gestor_binary)"; then
    args+=(--gestor "${gestor}")
  else
    err "target/release/gestor is missing and could not be built"
    FAILED=$((FAILED + 1))
    echo "not ok - gestor binary available for \`gestor snapshot\`"
  fi
  local out
  out="$(python3 "${KM_TESTS}/check_output.py" "${args[@]}")" || true
  grep -v '^checks: ' <<<"${out}" || true
  PASSED=$((PASSED + $(grep -c '^ok - ' <<<"${out}" || true)))
  FAILED=$((FAILED + $(grep -c '^not ok - ' <<<"${out}" || true)))
  if ! grep -q '^checks: ' <<<"${out}"; then
    FAILED=$((FAILED + 1))
    echo "not ok - check_output.py ran to the end"
  fi
}

main() {
  local start=${SECONDS}
  if [[ ${EUID} -ne 0 ]]; then
    err "run as root (installs packages, boots qemu, unshares a mount namespace)"
    exit 1
  fi
  WORK="$(mktemp -d /tmp/gestor-km.XXXXXX)"
  trap cleanup EXIT

  km_resolve_kernel
  km_install_tools

  check "checkpatch.pl --no-tree --strict -f gestor_containers.c: clean" checkpatch
  check "module builds for ${KM_KVER} without warnings" km_build_module "${WORK}/module"
  if [[ -n "${GESTOR_KM_KBUILD:-}" ]]; then
    echo "skip - dkms build (a kernel build tree, not installed headers)"
  else
    check "dkms build against the installed headers" dkms_build
  fi
  check "guest tools build (static)" km_build_gvm "${WORK}/gvm"
  if [[ ! -f "${WORK}/module/gestor_containers.ko" || ! -x "${WORK}/gvm" ]]; then
    err "nothing to boot"
    echo "kernel_module: ${PASSED} passed, $((FAILED + 1)) failed"
    exit 1
  fi
  km_build_initramfs "${WORK}" "${WORK}/initramfs.cpio"

  log "booting ${KM_KVER} in qemu (TCG): functional, leak, unload and stress phases"
  if check "guest ran to the end" km_boot "${WORK}/initramfs.cpio" "${WORK}/vm/out" \
    "${GUEST_MEM_MIB}" "gestor.mode=test"; then
    guest_checks
  fi

  log "wall time $((SECONDS - start)) s"
  echo "kernel_module: ${PASSED} passed, ${FAILED} failed"
  ((FAILED == 0))
}

main "$@"
