#!/usr/bin/env bash
# Benchmark of kernel_module/: in one qemu boot of a Debian kernel (TCG),
# with 100, 1,000, 2,000 and 10,000 processes in a container cgroup, the
# time to read /proc/sysinfo_202200075 whole against a compiled userspace
# scan of /proc that gathers the same fields and prints the same JSON
# (kernel_module/tests/vm/gvm.c compare): at each count, 8 rounds of three
# reads and one scan, interleaved so that both see the same host load, and
# compared by their means (a busy host stretches both in proportion on
# average, while one short read can be hit or missed). Under emulation only
# the ratio means something. At each count it also checks that the last
# read and the last scan list the same processes with the same name,
# command line, container ID and cgroup path.
#
# Two populations, each in its own boot: processes that sleep, and
# processes that each wake up and do a little work before every read and
# scan (so the module re-reads their command lines when due, as on a host
# whose processes all run). Both on the host's kernel (Debian 12's 6.1),
# where the goal is the module >= 50x faster at 2,000 and at 10,000
# processes, and on the newest kernel of the matrix, whose ratios are
# reported. Results: bench/out/kernel_module.txt.
#
# Usage: bench/kernel_module.sh [COUNTS] (default 100,1000,2000,10000)
set -euo pipefail

# shellcheck disable=SC1091 # checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/../kernel_module/tests/lib.sh"

# The counts: the first argument, passed on to the boots through the
# environment.
if [[ "${1:-}" =~ ^[0-9,]+$ ]]; then
  export GESTOR_BENCH_COUNTS="$1"
fi
readonly COUNTS="${GESTOR_BENCH_COUNTS:-100,1000,2000,10000}"
readonly ROUNDS=8
readonly GUEST_MEM_MIB=3072
readonly GOAL=50
WORK=""

cleanup() {
  [[ -z "${WORK}" ]] || rm -rf "${WORK}"
}

# report BENCH_TXT GOAL: one row per process count; with GOAL > 0, whether
# the module is GOAL times faster at 2,000 and 10,000, else the ratios.
report() {
  awk -v goal="$2" '
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
        if ((t == 2000 || t == 10000) && goal > 0)
          goals[++ng] = sprintf("at %d processes the module is %.1fx faster (mean); goal >= %dx: %s",
            t, u / m, goal, (u / m >= goal ? "met" : "missed"))
        else if (t == 2000 || t == 10000)
          goals[++ng] = sprintf("at %d processes the module is %.1fx faster (mean)", t, u / m)
      }
      for (g = 1; g <= ng; g++)
        print goals[g]
    }' "$1"
}

# One boot: KM_SUITE's kernel (lib.sh), population $1; the raw figures
# into $2.
bench_one() {
  local population="$1" raw="$2"
  WORK="$(mktemp -d /tmp/gestor-km-bench.XXXXXX)"
  trap cleanup EXIT
  km_resolve_kernel
  km_install_tools
  km_build_module "${WORK}/module"
  km_build_gvm "${WORK}/gvm"
  km_build_initramfs "${WORK}" "${WORK}/initramfs.cpio"
  log "booting ${KM_KVER} in qemu (TCG) with ${COUNTS} ${population} processes"
  km_boot "${WORK}/initramfs.cpio" "${WORK}/vm/out" "${GUEST_MEM_MIB}" \
    "gestor.mode=bench gestor.counts=${COUNTS} gestor.rounds=${ROUNDS} gestor.population=${population}"
  {
    echo "kernel=${KM_KVER}"
    cat "${WORK}/vm/out/bench.txt"
  } >"${raw}"
}

main() {
  local out="${KM_REPO}/bench/out" suite population raw kver
  if [[ ${EUID} -ne 0 ]]; then
    err "run as root"
    exit 1
  fi
  if [[ "${1:-}" == --one ]]; then
    bench_one "$2" "$3"
    return
  fi
  mkdir -p "${out}"
  : >"${out}/kernel_module-raw.txt"
  {
    echo "# kernel_module bench under qemu TCG, $(date -u +%FT%TZ), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# ${ROUNDS} rounds of 3 whole reads of the file and 1 userspace scan of /proc, interleaved; ratio of the means"
  } >"${out}/kernel_module.txt"
  for suite in "${KM_HOST_SUITE}" "${KM_SUITES[-1]}"; do
    for population in sleeping active; do
      raw="$(mktemp)"
      GESTOR_KM_SUITE="${suite}" bash "${BASH_SOURCE[0]}" --one "${population}" "${raw}"
      kver="$(sed -n 's/^kernel=//p' "${raw}")"
      cat "${raw}" >>"${out}/kernel_module-raw.txt"
      {
        echo "## ${kver} (${suite}), ${population} processes"
        if [[ "${suite}" == "${KM_HOST_SUITE}" ]]; then
          report "${raw}" "${GOAL}"
        else
          report "${raw}" 0
        fi
      } | tee -a "${out}/kernel_module.txt"
      rm -f "${raw}"
    done
  done
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "${out}/kernel_module.txt"
}

main "$@"
