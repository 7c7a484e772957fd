#!/usr/bin/env bash
# Builds a debug kernel from Debian's linux-source of the newest kernel of
# the matrix (GESTOR_KM_SUITE, default sid), in that suite's build root
# (its compiler), with a small config plus lockdep (PROVE_LOCKING),
# PROVE_RCU, DEBUG_ATOMIC_SLEEP, KASAN and kmemleak, then runs the whole
# qemu test suite (tests/run.sh) on it, as a two-node NUMA guest: under this
# kernel a locking, RCU, sleep-in-atomic or memory error of the module, or a
# leak of its own allocations, is reported in dmesg or by kmemleak, which
# the suite checks.
#
# Not part of `make test` (`make test-kernel-debug`): the first build takes
# about 40 minutes on 2 cores (see the kernel_module README). The tree is
# kept in the suite's build root ($GESTOR_KM_CACHE/root-SUITE/usr/src/
# gestor-debug-VERSION) and rebuilt only when the linux-source version or
# the config below changes.
#
# Usage (as root): kernel_module/debug-kernel.sh [--build-only]
set -euo pipefail
shopt -s inherit_errexit

export GESTOR_KM_SUITE="${GESTOR_KM_SUITE:-sid}"
# shellcheck disable=SC1091 # checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/tests/lib.sh"

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
  SECURITY_LOCKDOWN_LSM KALLSYMS MEMCG NUMA X86_64_ACPI_NUMA ACPI_NUMA
  NUMA_BALANCING MIGRATION VM_EVENT_COUNTERS
  DEBUG_KERNEL PROVE_LOCKING PROVE_RCU DEBUG_ATOMIC_SLEEP KASAN
  KASAN_GENERIC KASAN_INLINE KASAN_VMALLOC DEBUG_KMEMLEAK DEBUG_FS
  DETECT_HUNG_TASK SOFTLOCKUP_DETECTOR DEBUG_LIST
)
readonly MODULES=(BLK_DEV_RAM BLK_DEV_NBD)
# tinyconfig picks SLOB or SLUB_TINY (KASAN and kmemleak need SLUB) and the guess
# unwinder (lockdep's traces are better with frame pointers).
readonly EXTRA=(
  --enable SLUB --disable SLOB --disable SLUB_TINY --enable UNWINDER_FRAME_POINTER
  --disable UNWINDER_GUESS --set-str LSM lockdown
  --set-str LOCALVERSION -gestor-debug --disable LOCALVERSION_AUTO
)

# The build tools and the suite's linux-source, in its build root.
install_tools() {
  # shellcheck disable=SC2016 # expanded in the root
  if ! chroot "${KM_ROOT}" sh -c 'apt-get install -y -q --no-install-recommends \
      gcc make bc bison flex libelf-dev libssl-dev cpio kmod xz-utils openssl \
      perl python3 rsync &&
    apt-get install -y -q --no-install-recommends \
      "$(apt-cache search --names-only "^linux-source-[0-9.]+$" |
        cut -d" " -f1 | sort -V | tail -n 1)"' >"${KM_CACHE}/debug-apt.log" 2>&1; then
    tail -n 20 "${KM_CACHE}/debug-apt.log" >&2
    err "apt-get install in the ${KM_SUITE} root failed"
    return 1
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
  km_in_root make -s -C "${tree}" tinyconfig >/dev/null
  chroot "${KM_ROOT}" "${tree}/scripts/config" --file "${tree}/.config" "${args[@]}" \
    "${EXTRA[@]}"
  km_in_root make -s -C "${tree}" olddefconfig >/dev/null
  for opt in "${CONFIG[@]}"; do
    grep -qx "CONFIG_${opt}=y" "${KM_ROOT}${tree}/.config" || {
      err "CONFIG_${opt} is not set after olddefconfig"
      return 1
    }
  done
  for opt in "${MODULES[@]}"; do
    grep -qx "CONFIG_${opt}=m" "${KM_ROOT}${tree}/.config" || {
      err "CONFIG_${opt} is not a module after olddefconfig"
      return 1
    }
  done
}

# build: extract linux-source into the root and build it there, unless
# the same source with the same config was built already. Prints the tree
# (its path in the root).
build() {
  local src version tree stamp want start
  src="$(chroot "${KM_ROOT}" sh -c 'ls /usr/src/linux-source-*.tar.xz' | sort -V | tail -n 1)"
  # shellcheck disable=SC2016 # dpkg-query's format
  version="$(chroot "${KM_ROOT}" dpkg-query -W -f='${Version}' \
    "$(basename "${src}" .tar.xz)")"
  tree="/usr/src/gestor-debug-${version}"
  stamp="${KM_ROOT}${tree}/.gestor-built"
  want="${version} $(printf '%s\n' "${CONFIG[@]}" "${MODULES[@]}" "${EXTRA[@]}" |
    sha256sum | cut -d' ' -f1)"
  if [[ -f "${stamp}" && "$(head -n 1 "${stamp}")" == "${want}" ]]; then
    log "reusing ${KM_ROOT}${tree} ($(tail -n 1 "${stamp}"))" >&2
    echo "${tree}"
    return 0
  fi
  rm -rf "${KM_ROOT}${tree}" "${KM_ROOT}/usr/src/gestor-debug-x"
  mkdir -p "${KM_ROOT}/usr/src/gestor-debug-x"
  log "extracting ${src} ${version} into ${KM_ROOT}${tree}" >&2
  tar -xJf "${KM_ROOT}${src}" -C "${KM_ROOT}/usr/src/gestor-debug-x"
  mv "${KM_ROOT}/usr/src/gestor-debug-x/$(basename "${src}" .tar.xz)" "${KM_ROOT}${tree}"
  rmdir "${KM_ROOT}/usr/src/gestor-debug-x"
  configure "${tree}" >&2 || return 1
  log "building (make -j$(nproc)); output in ${KM_ROOT}${tree}/build.log" >&2
  start=${SECONDS}
  if ! km_in_root make -C "${tree}" -j"$(nproc)" >"${KM_ROOT}${tree}/build.log" 2>&1; then
    tail -n 30 "${KM_ROOT}${tree}/build.log" >&2
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
  km_suite_root
  install_tools
  tree="$(build)"
  [[ "${1:-}" == --build-only ]] && return 0
  log "running kernel_module/tests/run.sh on $(cat "${KM_ROOT}${tree}/include/config/kernel.release")"
  GESTOR_KM_KBUILD="${tree}" GESTOR_KM_QEMU_TIMEOUT="${GESTOR_KM_QEMU_TIMEOUT:-3600}" \
    "${KM_DIR}/tests/run.sh"
}

main "$@"
