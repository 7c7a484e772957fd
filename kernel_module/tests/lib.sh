#!/usr/bin/env bash
# Shared by kernel_module/tests/run.sh and bench/kernel_module.sh: installs
# Debian's kernel and the tools when missing, builds the module and the guest
# tools, packs an initramfs around tests/vm/init.sh and boots it in qemu
# (TCG). The guest sends its results back as a tar stream on its second
# serial port.
# shellcheck shell=bash

KM_TESTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly KM_TESTS
KM_DIR="$(dirname "${KM_TESTS}")"
readonly KM_DIR
KM_REPO="$(dirname "${KM_DIR}")"
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly KM_REPO
readonly KM_QEMU_TIMEOUT="${GESTOR_KM_QEMU_TIMEOUT:-900}"

err() {
  echo "kernel_module: $*" >&2
}

log() {
  echo "kernel_module: $*"
}

# Install Debian packages that are not installed yet (quiet, idempotent).
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

# Sets KM_KVER to the kernel that linux-image-amd64 points to (resolved now:
# the ABI number moves with security updates) or to $GESTOR_KVER, and makes
# sure the headers of exactly the same version are installed; KM_KDIR (the
# tree to build against), KM_KIMAGE (the image to boot) and KM_KMODS (where
# brd.ko and nbd.ko are) follow. With GESTOR_KM_KBUILD=DIR, a kernel built
# in DIR (kernel_module/debug-kernel.sh) is used instead.
km_resolve_kernel() {
  local dep image_version
  if [[ -n "${GESTOR_KM_KBUILD:-}" ]]; then
    KM_KDIR="${GESTOR_KM_KBUILD}"
    KM_KVER="$(cat "${KM_KDIR}/include/config/kernel.release")" || return 1
    KM_KIMAGE="${KM_KDIR}/arch/x86/boot/bzImage"
    KM_KMODS="${KM_KDIR}/drivers/block"
    readonly KM_KVER KM_KDIR KM_KIMAGE KM_KMODS
    log "kernel ${KM_KVER} built in ${KM_KDIR}"
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
  km_apt_install qemu-system-x86 busybox-static cpio gcc libc6-dev make \
    dkms python3-jsonschema xz-utils
}

# Build the module out of tree in $1 (a copy: the source tree stays clean).
km_build_module() {
  local build="$1"
  mkdir -p "${build}"
  cp "${KM_DIR}/gestor_containers.c" "${KM_DIR}/Kbuild" "${KM_DIR}/Makefile" \
    "${build}/"
  make -s -C "${build}" KDIR="${KM_KDIR}" >"${build}/build.log" 2>&1 || {
    cat "${build}/build.log" >&2
    err "module build failed"
    return 1
  }
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

# km_boot INITRAMFS OUTDIR MEM_MIB APPEND: boots the kernel, waits for the
# guest to power off, extracts the guest's tar stream into OUTDIR and keeps
# the serial console in OUTDIR/../console.log.
km_boot() {
  local initramfs="$1" outdir="$2" mem="$3" append="$4"
  local console data
  console="$(dirname "${outdir}")/console.log"
  data="$(dirname "${outdir}")/guest.tar"
  rm -f "${console}" "${data}"
  mkdir -p "${outdir}"
  if ! timeout "${KM_QEMU_TIMEOUT}" qemu-system-x86_64 -accel tcg -cpu max \
    -smp 2 -m "${mem}" -nodefaults -display none -no-reboot -monitor none \
    -kernel "${KM_KIMAGE}" -initrd "${initramfs}" \
    -append "console=ttyS0 quiet panic=-1 ${append}" \
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
