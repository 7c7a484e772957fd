#!/usr/bin/env bash
# Benchmark of kernel_module/: in one qemu boot of Debian's kernel (TCG),
# with 100, 1,000, 2,000 and 10,000 processes in a container cgroup, the
# time to read /proc/sysinfo_202200075 whole against a compiled userspace
# scan of /proc that gathers the same fields and prints the same JSON
# (kernel_module/tests/vm/gvm.c compare): at each count, 8 rounds of three
# reads and one scan, interleaved so that both see the same host load, and
# compared by their means (a busy host stretches both in proportion on
# average, while one short read can be hit or missed). Under emulation only
# the ratio means something. At each count it also checks that the last
# read and the last scan list the same processes with the same name,
# command line, container ID and cgroup path. Goal: the module >= 50x
# faster at 2,000 and at 10,000 processes. Results:
# bench/out/kernel_module.txt.
#
# Usage: bench/kernel_module.sh [COUNTS] (default 100,1000,2000,10000)
set -euo pipefail

# shellcheck disable=SC1091 # checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/../kernel_module/tests/lib.sh"

readonly COUNTS="${1:-100,1000,2000,10000}"
readonly ROUNDS=8
readonly GUEST_MEM_MIB=3072
readonly GOAL=50
WORK=""

cleanup() {
  [[ -z "${WORK}" ]] || rm -rf "${WORK}"
}

# report BENCH_TXT: one row per process count.
report() {
  awk -v goal="${GOAL}" '
    /^target=/ { t = substr($0, 8); rows[++n] = t }
    /^module / || /^userspace / || /^agreement / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[t, $1, kv[1]] = kv[2] }
    }
    END {
      printf "%-9s %6s %22s %26s %7s %9s %6s %6s\n", "processes", "listed",
        "module_ms min/med/mean", "userspace_ms min/med/mean", "ratio", "bytes",
        "B/proc", "same"
      for (r = 1; r <= n; r++) {
        t = rows[r]
        m = v[t, "module", "mean_ms"]
        u = v[t, "userspace", "mean_ms"]
        p = v[t, "module", "procs"]
        same = (v[t, "agreement", "only_module"] == 0 &&
          v[t, "agreement", "only_scan"] == 0 && v[t, "agreement", "differ"] == 0 &&
          v[t, "agreement", "module"] == p) ? "yes" : "NO"
        printf "%-9s %6s %6.1f/%6.1f/%6.1f %8.1f/%8.1f/%8.1f %6.1fx %9s %6.0f %6s\n",
          t, p, v[t, "module", "min_ms"], v[t, "module", "median_ms"], m,
          v[t, "userspace", "min_ms"], v[t, "userspace", "median_ms"], u,
          u / m, v[t, "module", "bytes"], v[t, "module", "bytes"] / p, same
        if (t == 2000 || t == 10000)
          goals[++ng] = sprintf("at %d processes the module is %.1fx faster (mean); goal >= %dx: %s",
            t, u / m, goal, (u / m >= goal ? "met" : "missed"))
      }
      for (g = 1; g <= ng; g++)
        print goals[g]
    }' "$1"
}

main() {
  if [[ ${EUID} -ne 0 ]]; then
    err "run as root"
    exit 1
  fi
  WORK="$(mktemp -d /tmp/gestor-km-bench.XXXXXX)"
  trap cleanup EXIT
  km_resolve_kernel
  km_install_tools
  km_build_module "${WORK}/module"
  km_build_gvm "${WORK}/gvm"
  km_build_initramfs "${WORK}" "${WORK}/initramfs.cpio"
  log "booting ${KM_KVER} in qemu (TCG) with ${COUNTS} processes"
  km_boot "${WORK}/initramfs.cpio" "${WORK}/vm/out" "${GUEST_MEM_MIB}" \
    "gestor.mode=bench gestor.counts=${COUNTS} gestor.rounds=${ROUNDS}"

  local out="${KM_REPO}/bench/out"
  mkdir -p "${out}"
  cp "${WORK}/vm/out/bench.txt" "${out}/kernel_module-raw.txt"
  {
    echo "# kernel_module bench, ${KM_KVER} under qemu TCG, $(date -u +%FT%TZ)"
    echo "# ${ROUNDS} rounds of 3 whole reads of the file and 1 userspace scan of /proc, interleaved; ratio of the means"
    report "${WORK}/vm/out/bench.txt"
  } | tee "${out}/kernel_module.txt"
}

main "$@"
