#!/usr/bin/env bash
# Shared by kernel_module/tests/run.sh, kernel_module/debug-kernel.sh and
# bench/kernel_module.sh: installs Debian's kernel and the tools when
# missing, builds the module and the guest tools, packs an initramfs around
# tests/vm/init.sh and boots it in qemu (TCG) as a two-node NUMA guest. The
# guest sends its results back as a tar stream on its second serial port.
#
# The kernel matrix: GESTOR_KM_SUITE picks the Debian suite whose kernel is
# used (bullseye 5.10, bookworm 6.1, trixie 6.12, sid the newest). The
# host's own suite uses the host's packages; another suite's kernel headers
# expect that suite's compiler, so the module is built in a root of that
# suite (mmdebstrap, cached in $GESTOR_KM_CACHE) and its image and modules
# are taken from its packages.
# shellcheck shell=bash

KM_TESTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly KM_TESTS
KM_DIR="$(dirname "${KM_TESTS}")"
readonly KM_DIR
KM_REPO="$(dirname "${KM_DIR}")"
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly KM_REPO
readonly KM_QEMU_TIMEOUT="${GESTOR_KM_QEMU_TIMEOUT:-900}"
# Downloads and build roots kept between runs.
readonly KM_CACHE="${GESTOR_KM_CACHE:-/tmp/gestor-kernel-cache}"
# The suites of the matrix, oldest kernel first.
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly KM_SUITES=(bullseye bookworm trixie sid)
KM_HOST_SUITE="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
readonly KM_HOST_SUITE
readonly KM_SUITE="${GESTOR_KM_SUITE:-${KM_HOST_SUITE}}"
# The build root of KM_SUITE ("" for the host's suite).
KM_ROOT=""

readonly PROG="kernel_module"
# err, wait_for and apt_install_missing, shared by the repository's scripts.
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/common.sh
source "${KM_REPO}/scripts/lib/common.sh"

log() {
  echo "kernel_module: $*"
}

# Install Debian packages that are not installed yet (quiet, idempotent),
# some pinned to a version (PACKAGE=VERSION, the headers of exactly the
# image's version), which apt_install_missing does not do.
km_apt_install() {
  local pkg
  local -a missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "${pkg%%=*}" 2>/dev/null \
      | grep -q 'install ok installed'; then
      missing+=("${pkg}")
    elif [[ "${pkg}" == *=* ]] \
      && [[ "$(dpkg-query -W -f='${Version}' "${pkg%%=*}")" != "${pkg#*=}" ]]; then
      missing+=("${pkg}")
    fi
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  local -a apt=(apt-get install -y -q --no-install-recommends "${missing[@]}")
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/tmp/gestor-km-apt.log 2>&1; then
    apt-get update -qq >>/tmp/gestor-km-apt.log 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>/tmp/gestor-km-apt.log 2>&1; then
      tail -n 20 /tmp/gestor-km-apt.log >&2
      err "apt-get install ${missing[*]} failed"
      return 1
    fi
  fi
}

# km_in_root CMD...: CMD in KM_ROOT, with /proc mounted in a private mount
# namespace (objtool reads it), so nothing stays mounted.
km_in_root() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  unshare -m --propagation private sh -c \
    'root="$1"; shift; mount -t proc proc "${root}/proc" && exec chroot "${root}" "$@"' \
    _ "${KM_ROOT}" "$@"
}

# The Debian mirror the host's apt uses (for the build roots).
km_mirror() {
  # shellcheck disable=SC2016 # apt's format, not the shell's
  apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
    | grep -v -- '-security' | sort -u | head -n 1
}

# Makes (or refreshes, when its package lists are older than 12 hours) the
# build root of KM_SUITE in the cache and sets KM_ROOT: a minimal root with
# make, dkms and the suite's linux-headers-amd64, so with the compiler its
# kernels were built with. Its package lists are kept, to download the
# suite's kernel image.
km_suite_root() {
  local root="${KM_CACHE}/root-${KM_SUITE}" mirror log
  log="${KM_CACHE}/root-${KM_SUITE}.log"
  mkdir -p "${KM_CACHE}"
  if [[ ! -x "${root}/usr/bin/make" ]]; then
    km_apt_install mmdebstrap
    mirror="$(km_mirror)"
    log "making a ${KM_SUITE} build root with mmdebstrap (${mirror:-no mirror found})"
    rm -rf "${root}.tmp"
    # A suite's Release file can be past its Valid-Until (sid's here).
    if ! mmdebstrap --variant=apt --aptopt 'Acquire::Check-Valid-Until "false"' \
      --skip=cleanup/apt/lists --include=make,dkms,linux-headers-amd64 \
      "${KM_SUITE}" "${root}.tmp" "${mirror}" >"${log}" 2>&1; then
      tail -n 20 "${log}" >&2
      err "mmdebstrap ${KM_SUITE} failed"
      rm -rf "${root}.tmp"
      return 1
    fi
    mv "${root}.tmp" "${root}"
  elif [[ -z "$(find "${root}/var/lib/apt/lists" -maxdepth 1 -name '*_Packages*' \
    -mmin -720 2>/dev/null)" ]]; then
    log "refreshing the ${KM_SUITE} build root"
    if ! chroot "${root}" sh -c 'apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        make dkms linux-headers-amd64' >"${log}" 2>&1; then
      tail -n 20 "${log}" >&2
      err "refreshing the ${KM_SUITE} build root failed"
      return 1
    fi
  fi
  KM_ROOT="${root}"
}

# km_fetch_image: the image, brd.ko and nbd.ko of KM_KVER from KM_SUITE's
# packages, into the cache (modules decompressed: busybox's insmod reads
# plain ELF). Sets KM_KIMAGE and KM_KMODS.
km_fetch_image() {
  local dir="${KM_CACHE}/kernel-${KM_KVER}" deb f
  if [[ ! -f "${dir}/vmlinuz" || ! -f "${dir}/brd.ko" || ! -f "${dir}/nbd.ko" ]]; then
    log "downloading linux-image-${KM_KVER} (${KM_SUITE})"
    rm -rf "${dir}" "${KM_ROOT}/tmp/gestor-image"
    mkdir -p "${KM_ROOT}/tmp/gestor-image" "${dir}/x"
    # Newer suites split the image into linux-binary- and linux-modules-.
    # shellcheck disable=SC2016 # expanded in the root
    if ! chroot "${KM_ROOT}" sh -c 'cd /tmp/gestor-image &&
      apt-get download -q -o APT::Sandbox::User=root "linux-image-$1" >/dev/null &&
      extra="$(dpkg-deb -f linux-image-*.deb Depends | tr "," "\n" |
        sed -n "s/^ *\(linux-\(binary\|modules\)-$1\)\( .*\)\{0,1\}$/\1/p")" &&
      if [ -n "${extra}" ]; then apt-get download -q -o APT::Sandbox::User=root ${extra} >/dev/null; fi' \
      _ "${KM_KVER}"; then
      err "cannot download linux-image-${KM_KVER}"
      return 1
    fi
    for deb in "${KM_ROOT}"/tmp/gestor-image/*.deb; do
      dpkg-deb -x "${deb}" "${dir}/x"
    done
    rm -rf "${KM_ROOT}/tmp/gestor-image"
    f="$(find "${dir}/x" \( -name "vmlinuz-${KM_KVER}" -o -name vmlinuz \) -type f | head -n 1)"
    [[ -n "${f}" ]] || { err "no vmlinuz in linux-image-${KM_KVER}"; return 1; }
    mv "${f}" "${dir}/vmlinuz"
    for f in brd nbd; do
      f="$(find "${dir}/x" -path "*/drivers/block/${f}.ko*" | head -n 1)"
      case "${f}" in
        *.ko) cp "${f}" "${dir}/" ;;
        *.ko.xz) xz -dc "${f}" >"${dir}/$(basename "${f}" .xz)" ;;
        *.ko.zst) zstd -qdc "${f}" >"${dir}/$(basename "${f}" .zst)" ;;
        *) err "no brd.ko or nbd.ko in linux-image-${KM_KVER}"; return 1 ;;
      esac
    done
    rm -rf "${dir}/x"
  fi
  KM_KIMAGE="${dir}/vmlinuz"
  KM_KMODS="${dir}"
}

# Sets KM_KVER to the kernel that linux-image-amd64 points to (resolved now:
# the ABI number moves with security updates) or to $GESTOR_KVER, and makes
# sure the headers of exactly the same version are installed; KM_KDIR (the
# tree to build against; a path in KM_ROOT for another suite), KM_KIMAGE
# (the image to boot) and KM_KMODS (where brd.ko and nbd.ko are) follow.
# With GESTOR_KM_KBUILD=DIR, a kernel built in DIR (kernel_module/
# debug-kernel.sh; in KM_SUITE's root) is used instead.
km_resolve_kernel() {
  local dep image_version tree
  if [[ "${KM_SUITE}" != "${KM_HOST_SUITE}" ]]; then
    km_suite_root || return 1
  fi
  if [[ -n "${GESTOR_KM_KBUILD:-}" ]]; then
    KM_KDIR="${GESTOR_KM_KBUILD}"
    tree="${KM_ROOT}${KM_KDIR}"
    KM_KVER="$(cat "${tree}/include/config/kernel.release")" || return 1
    KM_KIMAGE="${tree}/arch/x86/boot/bzImage"
    KM_KMODS="${tree}/drivers/block"
    readonly KM_KVER KM_KDIR KM_KIMAGE KM_KMODS
    log "kernel ${KM_KVER} built in ${tree}"
    return 0
  fi
  if [[ -n "${KM_ROOT}" ]]; then
    # The metapackage's linux-headers-<version> dependency (sid's lists
    # linux-base-amd64 first).
    # shellcheck disable=SC2016 # dpkg-query's format
    dep="$(chroot "${KM_ROOT}" dpkg-query -W -f='${Depends}' linux-headers-amd64 |
      tr ',' '\n' | sed -n 's/^ *linux-headers-\([0-9][^ ]*\).*$/\1/p' | head -n 1)"
    KM_KVER="${GESTOR_KVER:-${dep}}"
    KM_KDIR="/usr/src/linux-headers-${KM_KVER}"
    [[ -d "${KM_ROOT}${KM_KDIR}" ]] || { err "no ${KM_KDIR} in ${KM_ROOT}"; return 1; }
    km_fetch_image || return 1
    readonly KM_KVER KM_KDIR KM_KIMAGE KM_KMODS
    log "kernel ${KM_KVER} (${KM_SUITE}), built in ${KM_ROOT}"
    return 0
  fi
  if [[ -n "${GESTOR_KVER:-}" ]]; then
    KM_KVER="${GESTOR_KVER}"
  else
    km_apt_install linux-image-amd64
    dep="$(dpkg-query -W -f='${Depends}' linux-image-amd64)"
    dep="${dep%%[ ,]*}"
    KM_KVER="${dep#linux-image-}"
  fi
  image_version="$(dpkg-query -W -f='${Version}' "linux-image-${KM_KVER}")" || {
    km_apt_install "linux-image-${KM_KVER}"
    image_version="$(dpkg-query -W -f='${Version}' "linux-image-${KM_KVER}")"
  }
  km_apt_install "linux-headers-${KM_KVER}=${image_version}"
  if [[ ! -r "/boot/vmlinuz-${KM_KVER}" || ! -d "/lib/modules/${KM_KVER}/build" ]]; then
    err "kernel ${KM_KVER} is not complete (/boot/vmlinuz, headers)"
    return 1
  fi
  KM_KDIR="/lib/modules/${KM_KVER}/build"
  KM_KIMAGE="/boot/vmlinuz-${KM_KVER}"
  KM_KMODS="/lib/modules/${KM_KVER}/kernel/drivers/block"
  readonly KM_KVER KM_KDIR KM_KIMAGE KM_KMODS
  log "kernel ${KM_KVER} (${image_version}), headers of the same version"
}

km_install_tools() {
  apt_install_missing qemu-system-x86 busybox-static cpio gcc libc6-dev make \
    dkms python3-jsonschema xz-utils
}

# Build the module out of tree in $1 (a copy: the source tree stays clean);
# for another suite, in its root, with its compiler.
km_build_module() {
  local build="$1" src="$1" rel
  local -a in_root=()
  mkdir -p "${build}"
  if [[ -n "${KM_ROOT}" ]]; then
    src="$(mktemp -d "${KM_ROOT}/tmp/gestor-build.XXXXXX")"
    in_root=(km_in_root)
  fi
  cp "${KM_DIR}"/{gestor_containers.c,gc_compat.h,Kbuild,Makefile} "${src}/"
  rel="${src#"${KM_ROOT}"}"
  if ! "${in_root[@]}" make -s -C "${rel}" KDIR="${KM_KDIR}" \
    >"${build}/build.log" 2>&1; then
    cat "${build}/build.log" >&2
    err "module build failed"
    return 1
  fi
  if [[ "${src}" != "${build}" ]]; then
    cp "${src}/gestor_containers.ko" "${build}/"
    rm -rf "${src}"
  fi
  if grep -E 'warning|error' "${build}/build.log" >&2; then
    err "module build printed warnings"
    return 1
  fi
}

km_build_gvm() {
  local out="$1"
  gcc -static -O2 -Wall -Wextra -Werror -Wno-unused-parameter -pthread \
    -o "${out}" "${KM_TESTS}/vm/gvm.c"
}

# km_build_initramfs WORKDIR OUT.cpio: busybox, gvm, the module, brd.ko,
# nbd.ko and /init, with /dev/console (devtmpfs is not mounted
# automatically).
km_build_initramfs() {
  local work="$1" out="$2" root="$1/root"
  rm -rf "${root}"
  mkdir -p "${root}"/{bin,dev,proc,sys,tmp,out,lib/modules}
  cp /bin/busybox "${root}/bin/busybox"
  ln -s busybox "${root}/bin/sh"
  cp "${work}/gvm" "${root}/bin/gvm"
  cp "${work}/module/gestor_containers.ko" "${root}/lib/modules/"
  cp "${KM_KMODS}/brd.ko" "${KM_KMODS}/nbd.ko" "${root}/lib/modules/"
  install -m 0755 "${KM_TESTS}/vm/init.sh" "${root}/init"
  mknod -m 0600 "${root}/dev/console" c 5 1
  (cd "${root}" && find . -print0 | cpio --null -o -H newc --quiet) >"${out}"
}

# km_boot INITRAMFS OUTDIR MEM_MIB APPEND: boots the kernel as a two-node
# NUMA guest (a CPU and half the memory each, NUMA balancing on), waits for
# the guest to power off, extracts the guest's tar stream into OUTDIR and
# keeps the serial console in OUTDIR/../console.log.
#
# A guest kernel that oopses before any module is loaded ("Modules linked
# in:" with nothing after it) is booted once more, and says so: the module
# cannot be the cause. Seen once in the CI of 2026-12-07: sid's 7.2 died at
# 1.3 s in set_next_task_fair, its instruction pointer one byte into a
# 5-byte NOP, beside ftrace's init patching kernel text: stale code run
# by the other vCPU of qemu's multi-threaded TCG.
km_boot() {
  local attempt
  for attempt in 1 2; do
    if km_boot_once "$@"; then
      return 0
    fi
    if [[ "${attempt}" == 2 ]] || ! km_crashed_before_modules "$2"; then
      return 1
    fi
    err "the guest kernel crashed before any module was loaded (not the module's doing); booting it again"
    cp "$(dirname "$2")/console.log" "$(dirname "$2")/console.first-boot.log"
  done
}

# km_crashed_before_modules OUTDIR: the last boot's console shows an oops
# taken while no module was loaded.
km_crashed_before_modules() {
  grep -Eq 'Modules linked in:[[:space:]]*$' "$(dirname "$1")/console.log" 2>/dev/null
}

km_boot_once() {
  local initramfs="$1" outdir="$2" mem="$3" append="$4"
  local console data half=$(($3 / 2))
  console="$(dirname "${outdir}")/console.log"
  data="$(dirname "${outdir}")/guest.tar"
  rm -f "${console}" "${data}"
  mkdir -p "${outdir}"
  if ! timeout "${KM_QEMU_TIMEOUT}" qemu-system-x86_64 -accel tcg -cpu max \
    -smp 2,sockets=2,cores=1,threads=1 -m "${mem}" -nodefaults -display none -no-reboot -monitor none \
    -object "memory-backend-ram,id=m0,size=${half}M" \
    -object "memory-backend-ram,id=m1,size=$((mem - half))M" \
    -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1 \
    -kernel "${KM_KIMAGE}" -initrd "${initramfs}" \
    -append "console=ttyS0 quiet panic=-1 numa_balancing=enable ${append}" \
    -serial "file:${console}" -serial "file:${data}" </dev/null; then
    err "qemu failed or timed out after ${KM_QEMU_TIMEOUT}s; console:"
    tail -n 40 "${console}" >&2
    return 1
  fi
  if ! tar -xz -f "${data}" -C "${outdir}" 2>/dev/null; then
    err "no results from the guest; console:"
    tail -n 40 "${console}" >&2
    return 1
  fi
}
