#!/usr/bin/env bash
# Test suite of kernel_module/ on one kernel of the matrix: checkpatch, a
# build with no warnings, a DKMS build, then a real Debian kernel booted in
# qemu (TCG) with the module loaded, whose output is validated against
# schema/sysinfo.schema.json, compared with /proc and parsed by
# `gestor snapshot` (tests/check_output.py). Needs root; installs what it
# needs when missing. GESTOR_KM_SUITE picks the kernel (lib.sh);
# --build-only stops after the builds (kernel_module/tests/matrix.sh);
# --big instead reads 100,000 processes (GESTOR_KM_BIG) end to end and
# times the daemon's parse of the document.
# GESTOR_KM_KEEP=1 keeps the work directory.
set -euo pipefail

# shellcheck disable=SC1091 # lib.sh is checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly GUEST_CPUS=2
readonly GUEST_MEM_MIB=1536
readonly BIG_PROCS="${GESTOR_KM_BIG:-100000}"
readonly BIG_MEM_MIB=6144
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
# once into the cache, from the host's newest linux-source.
checkpatch() {
  local series dir tmp
  series="$(apt-cache search --names-only '^linux-source-[0-9.]+$' | cut -d' ' -f1 |
    sed 's/^linux-source-//' | sort -V | tail -n 1)"
  [[ -n "${series}" ]] || series="$(cut -d. -f1,2 <<<"${KM_KVER}")"
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
  # gc_compat.h exists to test LINUX_VERSION_CODE and to call what older
  # kernels have (kmap_atomic()): those three checks do not apply to it.
  { perl "${dir}/checkpatch.pl" --no-tree --strict -f "${KM_DIR}/gestor_containers.c" &&
    perl "${dir}/checkpatch.pl" --no-tree --strict \
      --ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON,DEPRECATED_API -f "${KM_DIR}/gc_compat.h"
  } >"${WORK}/checkpatch.log" 2>&1 || {
    cat "${WORK}/checkpatch.log" >&2
    return 1
  }
}

# dkms add + build against the kernel's headers: on the host in a private
# mount namespace, so that the MOK dkms generates on first use stays out of
# the host's /var/lib/dkms; for another suite in its build root (where it
# may stay).
dkms_build() {
  local version base src tree ko private=/var/lib/dkms
  local -a run=(unshare -m --propagation private)
  version="$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "${KM_DIR}/dkms.conf")"
  base="${WORK}/dkms"
  if [[ -n "${KM_ROOT}" ]]; then
    base="$(mktemp -d "${KM_ROOT}/tmp/gestor-dkms.XXXXXX")"
    run=(km_in_root)
    private=""
  fi
  src="${base}/src"
  tree="${base}/tree"
  mkdir -p "${src}/gestor-containers-${version}" "${tree}"
  cp "${KM_DIR}"/{gestor_containers.c,gc_compat.h,Kbuild,Makefile,dkms.conf} \
    "${src}/gestor-containers-${version}/"
  # shellcheck disable=SC2016 # expanded by the inner bash
  if ! "${run[@]}" bash -c '
      set -e
      if [ -n "$5" ]; then mount -t tmpfs tmpfs "$5"; fi
      dkms --dkmstree "$1" --sourcetree "$2" add -m gestor-containers -v "$3"
      dkms --dkmstree "$1" --sourcetree "$2" build -m gestor-containers \
        -v "$3" -k "$4"' _ "${tree#"${KM_ROOT}"}" "${src#"${KM_ROOT}"}" "${version}" \
    "${KM_KVER}" "${private}" >"${WORK}/dkms.log" 2>&1; then
    cat "${WORK}/dkms.log" >&2
    return 1
  fi
  # dkms compresses it as the kernel's modules are (.ko.xz from 6.12 on).
  ko="$(find "${tree}/gestor-containers/${version}/${KM_KVER}/x86_64/module" \
    -name 'gestor_containers.ko*' | head -n 1)"
  [[ -n "${ko}" && "$(modinfo -F vermagic "${ko}")" == "${KM_KVER} "* ]] || return 1
  [[ -z "${KM_ROOT}" ]] || rm -rf "${base}"
}

# The daemon's parser, built when missing (`make test` builds it first), or
# $GESTOR_KM_GESTOR. Prints only the binary's path.
gestor_binary() {
  local bin="${GESTOR_KM_GESTOR:-${KM_REPO}/target/release/gestor}"
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

# --big: the guest's figures for one read of BIG_PROCS processes, and the
# daemon's parse of that document (`gestor snapshot --summary`), timed.
big_checks() {
  local info gestor out procs t0 ms
  info="$(tail -n 2 "${WORK}/vm/out/big.txt" | tr '\n' ' ')"
  log "guest: ${info}"
  procs="$(sed -n 's/.*processes=\([0-9]*\).*/\1/p' <<<"${info}")"
  check "${BIG_PROCS} processes read end to end (${procs:-none} listed)" \
    test "${procs:-0}" -ge "${BIG_PROCS}"
  check "the document is one valid JSON document of version 3" python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
sys.exit(doc["version"] != 3)' "${WORK}/vm/out/big.json"
  if ! gestor="$(gestor_binary)"; then
    check "gestor binary available for \`gestor snapshot\`" false
    return
  fi
  t0="$(date +%s%N)"
  if out="$("${gestor}" snapshot --summary --sysinfo "${WORK}/vm/out/big.json" 2>&1)"; then
    ms=$((($(date +%s%N) - t0) / 1000000))
    check "gestor snapshot --summary parses it (${ms} ms)" true
  else
    ms=$((($(date +%s%N) - t0) / 1000000))
    echo "${out}" | tail -n 3 >&2
    check "gestor snapshot --summary parses it (${ms} ms)" false
  fi
  echo "big: ${info}parse_ms=${ms} bytes_on_host=$(stat -c %s "${WORK}/vm/out/big.json")"
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

  check "checkpatch.pl --no-tree --strict: gestor_containers.c and gc_compat.h clean" \
    checkpatch
  check "module builds for ${KM_KVER} without warnings" km_build_module "${WORK}/module"
  if [[ -n "${GESTOR_KM_KBUILD:-}" ]]; then
    echo "skip - dkms build (a kernel build tree, not installed headers)"
  else
    check "dkms build against the ${KM_KVER} headers" dkms_build
  fi
  if [[ "${1:-}" == --build-only ]]; then
    log "wall time $((SECONDS - start)) s"
    echo "kernel_module ${KM_KVER}: ${PASSED} passed, ${FAILED} failed"
    ((FAILED == 0))
    return
  fi
  check "guest tools build (static)" km_build_gvm "${WORK}/gvm"
  if [[ ! -f "${WORK}/module/gestor_containers.ko" || ! -x "${WORK}/gvm" ]]; then
    err "nothing to boot"
    echo "kernel_module: ${PASSED} passed, $((FAILED + 1)) failed"
    exit 1
  fi
  km_build_initramfs "${WORK}" "${WORK}/initramfs.cpio"

  if [[ "${1:-}" == --big ]]; then
    log "booting ${KM_KVER} in qemu (TCG) with ${BIG_PROCS} processes"
    if check "guest ran to the end" km_boot "${WORK}/initramfs.cpio" "${WORK}/vm/out" \
      "${BIG_MEM_MIB}" "gestor.mode=big gestor.count=${BIG_PROCS}"; then
      big_checks
    fi
    log "wall time $((SECONDS - start)) s"
    echo "kernel_module ${KM_KVER} --big: ${PASSED} passed, ${FAILED} failed"
    ((FAILED == 0))
    return
  fi

  log "booting ${KM_KVER} in qemu (TCG): functional, leak, unload and stress phases"
  if check "guest ran to the end" km_boot "${WORK}/initramfs.cpio" "${WORK}/vm/out" \
    "${GUEST_MEM_MIB}" "gestor.mode=test"; then
    guest_checks
  fi

  log "wall time $((SECONDS - start)) s"
  echo "kernel_module ${KM_KVER}: ${PASSED} passed, ${FAILED} failed"
  ((FAILED == 0))
}

main "$@"
