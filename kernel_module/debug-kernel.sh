#!/usr/bin/env bash
# Builds a debug kernel from Debian's linux-source-6.1 (the sources of the
# linux-image the test suite boots) with a small config plus lockdep
# (PROVE_LOCKING), PROVE_RCU, DEBUG_ATOMIC_SLEEP, KASAN and kmemleak, then
# runs the whole qemu test suite (tests/run.sh) on it: under this kernel a
# locking, RCU, sleep-in-atomic or memory error of the module, or a leak of
# its own allocations, is reported in dmesg or by kmemleak, which the suite
# checks.
#
# Not part of `make test`: the first build takes about 35 minutes on 2
# cores (see the kernel_module README). The tree is cached in
# $GESTOR_DEBUG_KERNEL_DIR (default /var/cache/gestor/debug-kernel) and
# rebuilt only when the linux-source version or the config below changes.
#
# Usage (as root): kernel_module/debug-kernel.sh [--build-only]
set -euo pipefail

KM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly KM_DIR
readonly CACHE="${GESTOR_DEBUG_KERNEL_DIR:-/var/cache/gestor/debug-kernel}"
readonly SERIES=6.1

# What the guest needs (serial console, initramfs, cgroups, namespaces,
# brd, nbd over a unix socket, swap, userfaultfd, module signing for the
# lockdown check, the accounting the module reads), then the debugging.
readonly CONFIG=(
  64BIT SMP PRINTK BUG TTY SERIAL_8250 SERIAL_8250_CONSOLE PCI ACPI
  BLK_DEV_INITRD BINFMT_ELF BINFMT_SCRIPT PROC_FS PROC_SYSCTL SYSFS
  DEVTMPFS TMPFS SHMEM MULTIUSER FUTEX EPOLL SIGNALFD TIMERFD EVENTFD
  FILE_LOCKING POSIX_TIMERS ADVISE_SYSCALLS USERFAULTFD NET UNIX BLOCK
  BLK_DEV SWAP CGROUPS CGROUP_PIDS NAMESPACES PID_NS MODULES MODULE_UNLOAD
  MODULE_SIG TASKSTATS TASK_XACCT TASK_IO_ACCOUNTING SECURITY SECURITYFS
  SECURITY_LOCKDOWN_LSM KALLSYMS
  DEBUG_KERNEL PROVE_LOCKING PROVE_RCU DEBUG_ATOMIC_SLEEP KASAN
  KASAN_GENERIC KASAN_INLINE KASAN_VMALLOC DEBUG_KMEMLEAK DEBUG_FS
  DETECT_HUNG_TASK SOFTLOCKUP_DETECTOR DEBUG_LIST
)
readonly MODULES=(BLK_DEV_RAM BLK_DEV_NBD)
# tinyconfig picks SLOB (KASAN and kmemleak need SLUB) and the guess
# unwinder (lockdep's traces are better with frame pointers).
readonly EXTRA=(
  --enable SLUB --disable SLOB --enable UNWINDER_FRAME_POINTER
  --disable UNWINDER_GUESS --set-str LSM lockdown
  --set-str LOCALVERSION -gestor-debug --disable LOCALVERSION_AUTO
)

err() {
  echo "debug-kernel: $*" >&2
}

log() {
  echo "debug-kernel: $*"
}

install_tools() {
  local -a apt=(apt-get install -y -q --no-install-recommends
    "linux-source-${SERIES}" gcc make bc bison flex libelf-dev libssl-dev
    cpio kmod xz-utils openssl perl python3)
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/tmp/gestor-debug-apt.log 2>&1; then
    apt-get update -qq >>/tmp/gestor-debug-apt.log 2>&1 || true
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>/tmp/gestor-debug-apt.log 2>&1 || {
      tail -n 20 /tmp/gestor-debug-apt.log >&2
      err "apt-get install failed"
      return 1
    }
  fi
}

# The config: tinyconfig, the options above, then olddefconfig; fails if
# an option did not survive (a dependency is missing).
configure() {
  local tree="$1" opt
  local -a args=()
  for opt in "${CONFIG[@]}"; do
    args+=(--enable "${opt}")
  done
  for opt in "${MODULES[@]}"; do
    args+=(--module "${opt}")
  done
  make -s -C "${tree}" tinyconfig >/dev/null
  "${tree}/scripts/config" --file "${tree}/.config" "${args[@]}" "${EXTRA[@]}"
  make -s -C "${tree}" olddefconfig >/dev/null
  for opt in "${CONFIG[@]}"; do
    grep -qx "CONFIG_${opt}=y" "${tree}/.config" || {
      err "CONFIG_${opt} is not set after olddefconfig"
      return 1
    }
  done
  for opt in "${MODULES[@]}"; do
    grep -qx "CONFIG_${opt}=m" "${tree}/.config" || {
      err "CONFIG_${opt} is not a module after olddefconfig"
      return 1
    }
  done
}

# build: extract linux-source into the cache and build it, unless the
# same source with the same config was built already. Prints the tree.
build() {
  local version tree stamp want start
  version="$(dpkg-query -W -f='${Version}' "linux-source-${SERIES}")"
  tree="${CACHE}/linux-${version}"
  stamp="${tree}/.gestor-built"
  want="${version} $(printf '%s\n' "${CONFIG[@]}" "${MODULES[@]}" "${EXTRA[@]}" |
    sha256sum | cut -d' ' -f1)"
  if [[ -f "${stamp}" && "$(head -n 1 "${stamp}")" == "${want}" ]]; then
    log "reusing ${tree} ($(tail -n 1 "${stamp}"))" >&2
    echo "${tree}"
    return 0
  fi
  rm -rf "${tree}"
  mkdir -p "${CACHE}"
  log "extracting linux-source-${SERIES} ${version} into ${tree}" >&2
  tar -xJf "/usr/src/linux-source-${SERIES}.tar.xz" -C "${CACHE}"
  mv "${CACHE}/linux-source-${SERIES}" "${tree}"
  configure "${tree}" >&2
  log "building (make -j$(nproc)); output in ${tree}/build.log" >&2
  start=${SECONDS}
  if ! make -C "${tree}" -j"$(nproc)" >"${tree}/build.log" 2>&1; then
    tail -n 30 "${tree}/build.log" >&2
    err "kernel build failed"
    return 1
  fi
  printf '%s\nbuilt in %d s on %s\n' "${want}" "$((SECONDS - start))" \
    "$(date -u +%FT%TZ)" >"${stamp}"
  log "built in $((SECONDS - start)) s" >&2
  echo "${tree}"
}

main() {
  local tree
  if [[ ${EUID} -ne 0 ]]; then
    err "run as root"
    exit 1
  fi
  install_tools
  tree="$(build)"
  [[ "${1:-}" == --build-only ]] && return 0
  log "running kernel_module/tests/run.sh on $(cat "${tree}/include/config/kernel.release")"
  GESTOR_KM_KBUILD="${tree}" GESTOR_KM_QEMU_TIMEOUT="${GESTOR_KM_QEMU_TIMEOUT:-3600}" \
    "${KM_DIR}/tests/run.sh"
}

main "$@"
