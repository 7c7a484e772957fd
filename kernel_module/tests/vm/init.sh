#!/bin/sh
# /init of the qemu guest that kernel_module/tests/run.sh (gestor.mode=test)
# and bench/kernel_module.sh (gestor.mode=bench) boot. Runs the workloads in
# container-like cgroups, reads the module's file and leaves everything the
# host checks in /out, then sends /out as a tar stream on /dev/ttyS1 and
# powers off. Progress goes to the console (ttyS0).
# shellcheck shell=sh

export PATH=/bin
readonly CG=/sys/fs/cgroup
readonly V1=/cgv1/pids
readonly FILE=/proc/sysinfo_202200075
readonly KO=/lib/modules/gestor_containers.ko
readonly OUT=/out

log() {
  read -r up _ </proc/uptime
  echo "gestor-vm: [${up}] $*"
}

# Record a check result; the host turns failures into test failures.
check() {
  echo "$1=$2" >>"${OUT}/checks.txt"
  log "check $1=$2"
}

finish() {
  log "sending results"
  dmesg >"${OUT}/dmesg.txt"
  stty -F /dev/ttyS1 raw -echo
  tar -cz -C "${OUT}" . >/dev/ttyS1
  sync
  log "done"
  poweroff -f
}

newid() {
  head -c 32 /dev/urandom | hexdump -v -e '/1 "%02x"'
}

# A cgroup name with a quote, a backslash and byte 0xff
# (tests/check_output.py holds the same bytes).
hostile_cgroup_name() {
  printf 'q"\\\377x'
}

wait_for() {
  # wait_for TRIES CMD...: poll every 0.1 s.
  n="$1"
  shift
  while ! "$@"; do
    n=$((n - 1))
    [ "${n}" -gt 0 ] || return 1
    usleep 100000
  done
}

# start ROLE CGROUP_DIR CMD...: run CMD in the cgroup (made if missing),
# wait until it is set up, record "ROLE PID" in the manifest.
start() {
  role="$1"
  dir="$2"
  shift 2
  mkdir -p "${dir}"
  GVM_READY="/tmp/ready.${role}" gvm incg "${dir}" "$@" &
  pid=$!
  wait_for 300 test -e "/tmp/ready.${role}" || log "${role} not ready"
  echo "${role} ${pid}" >>"${OUT}/manifest.txt"
}

write_bytes() {
  sed -n 's/^write_bytes: //p' "/proc/$1/io"
}

boot() {
  /bin/busybox mount -t proc proc /proc
  /bin/busybox --install -s /bin
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  mount -t tmpfs tmpfs /tmp
  mount -t tmpfs tmpfs "${OUT}"
  mount -t cgroup2 cgroup2 "${CG}"
  # Memory charges per cgroup (phase_memory, mode big).
  echo +memory >"${CG}/cgroup.subtree_control"
  mount -t securityfs securityfs /sys/kernel/security
  # kmemleak, on a debug kernel (kernel_module/debug-kernel.sh).
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
  mode="$(sed -n 's/.*gestor\.mode=\([a-z]*\).*/\1/p' /proc/cmdline)"
  log "booted, mode ${mode}"
}

setup_containers() {
  ID_SD="$(newid)"
  ID_FS="$(newid)"
  ID_POD="$(newid)"
  ID_CRI="$(newid)"
  ID_V1="$(newid)"
  SD="${CG}/system.slice/docker-${ID_SD}.scope"
  FS="${CG}/docker/${ID_FS}"
  POD="${CG}/machine.slice/libpod-${ID_POD}.scope"
  CONMON="${CG}/machine.slice/libpod-conmon-${ID_POD}.scope"
  CRI="${CG}/kubepods.slice/kubepods-besteffort.slice"
  CRI="${CRI}/kubepods-besteffort-pod0f1e2d3c.slice/cri-containerd-${ID_CRI}.scope"
  USER="${CG}/user.slice"
  mkdir -p "${SD}" "${FS}" "${POD}" "${CONMON}" "${CRI}" "${USER}"
  # The other parents the module accepts: nerdctl (systemd driver),
  # containerd's default namespace (cgroupfs), Kubernetes with the cgroupfs
  # driver, CRI-O under a guaranteed pod with the systemd driver.
  ID_NERD="$(newid)"
  ID_CTRD="$(newid)"
  ID_KFS="$(newid)"
  ID_CRIO="$(newid)"
  NERD="${CG}/system.slice/nerdctl-${ID_NERD}.scope"
  CTRD="${CG}/default/${ID_CTRD}"
  KFS="${CG}/kubepods/burstable/pod7c9e6679-7425-40de-944b-e07fc1f90ae7/${ID_KFS}"
  CRIO="${CG}/kubepods.slice/kubepods-pod7c9e6679_7425_40de_944b_e07fc1f90ae7.slice/crio-${ID_CRIO}.scope"
  mkdir -p "${NERD}" "${CTRD}" "${KFS}" "${CRIO}"
  # A cgroup v1 hierarchy (the pids controller, unused on v2 here), with a
  # cgroupfs-driver container in it.
  mkdir -p "${V1}"
  mount -t cgroup -o pids cgroup "${V1}"
  mkdir -p "${V1}/docker/${ID_V1}"
  {
    echo "sd ${ID_SD} /system.slice/docker-${ID_SD}.scope"
    echo "fs ${ID_FS} /docker/${ID_FS}"
    echo "pod ${ID_POD} /machine.slice/libpod-${ID_POD}.scope"
    echo "cri ${ID_CRI} ${CRI#"${CG}"}"
    echo "v1 ${ID_V1} /docker/${ID_V1}"
    echo "nerd ${ID_NERD} ${NERD#"${CG}"}"
    echo "ctrd ${ID_CTRD} ${CTRD#"${CG}"}"
    echo "kfs ${ID_KFS} ${KFS#"${CG}"}"
    echo "crio ${ID_CRIO} ${CRIO#"${CG}"}"
  } >"${OUT}/containers.txt"
}

# Cgroups that name no container, each with a sleeper (role decoy_*): a
# real container's ID where a user can create it (a 64-hex name under
# user.slice, Docker's layouts inside a systemd user session's delegated
# subtree), and names that are almost IDs.
start_decoys() {
  upper="$(echo "${ID_FS}" | tr a-f A-F)"
  delegated="${USER}/user-1000.slice/user@1000.service"
  start decoy_user_id "${USER}/${ID_FS}" gvm sleep
  start decoy_session_scope "${delegated}/app.slice/docker-${ID_SD}.scope" \
    gvm sleep
  start decoy_session_docker "${delegated}/docker/${ID_FS}" gvm sleep
  start decoy_hex63 "${CG}/docker/$(newid | cut -c1-63)" gvm sleep
  start decoy_hex65 "${CG}/docker/$(newid)a" gvm sleep
  start decoy_upper "${CG}/docker/${upper}" gvm sleep
  start decoy_scopex "${CG}/system.slice/docker-${ID_SD}.scopeX" gvm sleep
  start decoy_pod_slice "${CG}/kubepods.slice/${ID_CRI}" gvm sleep
}

start_workloads() {
  # ram0: the dd writer's device; ram1: swap; ram2: cancelwrite's device.
  insmod /lib/modules/brd.ko rd_nr=3 rd_size=65536
  # Swap with pages in use, so that total and free differ.
  if mkswap /dev/ram1 >/dev/null && swapon /dev/ram1; then
    start swapper "${FS}" gvm swapper 8
  else
    log "swapon /dev/ram1 failed"
  fi
  # cancelwrite's pages must still be dirty when it zeroes them out: no
  # expiry, and a background share for ram2's new bdi (with no writeout
  # history, its share is 0, and the flusher's first pass would write it).
  echo 360000 >/proc/sys/vm/dirty_expire_centisecs
  echo 50 >"/sys/class/bdi/$(cat /sys/block/ram2/dev)/min_ratio"
  start cancelwrite "${POD}" gvm cancelwrite /dev/ram2 4
  start reaper "${SD}" gvm reaper 300
  start nerd "${NERD}" gvm sleep
  start ctrd "${CTRD}" gvm sleep
  start kfs "${KFS}" gvm sleep
  start crio "${CRIO}" gvm sleep
  # A sub-cgroup of a container with a hostile name, one outside
  # containers, and a container's cgroup path of PATH_MAX - 1 bytes.
  start hostilecg "${FS}/$(hostile_cgroup_name)" gvm sleep
  start hostileout "${USER}/$(hostile_cgroup_name)" gvm sleep
  GVM_READY=/tmp/ready.deep gvm deepcg "${CG}" "${FS#"${CG}"}" 4095 gvm sleep &
  wait_for 300 test -e /tmp/ready.deep || log "deep not ready"
  echo "deep $!" >>"${OUT}/manifest.txt"
  start_decoys
  start burner "${SD}" gvm burn
  start zleader "${SD}" gvm zleader
  start holder "${FS}" gvm hold 64
  start longargs "${FS}" gvm longargs
  start zombie "${FS}" gvm zombie
  echo "zombiechild $(cat /tmp/ready.zombie)" >>"${OUT}/manifest.txt"
  start hostile "${CRI}" gvm hostile
  start v1sleeper "${V1}/docker/${ID_V1}" gvm sleep
  start user "${USER}" gvm sleep
  start conmon "${CONMON}" gvm sleep
  start rootcg "${CG}" gvm sleep
  # The dd writer: 24 MiB to a block device (write_bytes counts only
  # block-backed I/O), then it waits on its pipe.
  gvm incg "${POD}" sh -c \
    '(dd if=/dev/zero bs=1M count=24 2>/dev/null; sleep 100000) | exec dd of=/dev/ram0 bs=1M 2>/dev/null' &
  for try in $(seq 100); do
    for p in $(pidof dd); do
      if tr '\0' ' ' <"/proc/${p}/cmdline" 2>/dev/null | grep -q 'of=/dev/ram0' &&
        [ "$(write_bytes "${p}")" -ge 25165824 ] 2>/dev/null; then
        writer="${p}"
      fi
    done
    [ -n "${writer:-}" ] && break
    usleep 100000
  done
  log "dd writer ${writer:-missing} after ${try} polls"
  echo "writer ${writer:-0}" >>"${OUT}/manifest.txt"
  # Let the burner accumulate CPU time.
  sleep 2
}

phase_functional() {
  insmod "${KO}" || check insmod fail
  check default_mode "$(stat -c %a "${FILE}")"
  mkdir -p "${OUT}/before" "${OUT}/after"
  gvm dump "${OUT}/before"
  cat "${FILE}" >"${OUT}/default.json"
  gvm dump "${OUT}/after" sysfirst
  echo 1 >/sys/module/gestor_containers/parameters/all_processes
  cat "${FILE}" >"${OUT}/all.json"
  echo 0 >/sys/module/gestor_containers/parameters/all_processes
  rmmod gestor_containers
  check default_gone_after_rmmod "$([ -e "${FILE}" ] && echo no || echo yes)"

  insmod "${KO}" proc_name=gestor_test all_processes=1 proc_mode=0444
  check named_exists "$([ -e /proc/gestor_test ] && echo yes || echo no)"
  check named_mode "$(stat -c %a /proc/gestor_test)"
  check named_default_absent "$([ -e "${FILE}" ] && echo no || echo yes)"
  cat /proc/gestor_test >"${OUT}/named.json"
  rmmod gestor_containers
  for bad in proc_name=a/b proc_name= proc_mode=0666 proc_mode=0; do
    if insmod "${KO}" "${bad}" 2>/dev/null; then
      check "reject_${bad%%=*}_${bad#*=}" loaded
      rmmod gestor_containers
    else
      check "reject_${bad%%=*}_${bad#*=}" refused
    fi
  done
  # A name /proc already has: EEXIST, which kernels from 6.4 on turn into
  # EBUSY (EEXIST from init_module() means "already loaded"); the reason is
  # in dmesg, and no warning.
  if out="$(insmod "${KO}" proc_name=meminfo 2>&1)"; then
    check reject_proc_name_taken loaded
    rmmod gestor_containers
  else
    case "${out}" in
      *"File exists"* | *"Device or resource busy"*)
        check reject_proc_name_taken refused ;;
      *) check reject_proc_name_taken "other: ${out}" ;;
    esac
  fi
}

# NUMA hinting faults (a two-node guest, numa_balancing=enable): gvm
# numahint runs until NUMA balancing has scanned its memory 4 times, then
# sleeps, its argument page untouched since: that page carries a hinting
# fault. Its command line must still be read (kernels before 6.5 take the
# fault through get_user_pages_remote(); later ones read such a page
# without one). Runs before the other workloads, so that it is the only
# process listed and its fault the only one the read causes.
phase_numa() {
  insmod "${KO}"
  uname -r >"${OUT}/kernel.txt"
  check numa_nodes "$(find /sys/devices/system/node -maxdepth 1 -name 'node[0-9]*' | wc -l)"
  check numa_balancing "$(cat /proc/sys/kernel/numa_balancing)"
  GVM_READY=/tmp/ready.numahint gvm incg "${FS}" gvm numahint &
  numahint=$!
  if wait_for 1500 test -s /tmp/ready.numahint; then
    read -r _ scans </tmp/ready.numahint
  else
    scans=none
  fi
  echo "numahint ${numahint}" >>"${OUT}/manifest.txt"
  f0="$(awk '$1 == "numa_hint_faults" { print $2 }' /proc/vmstat)"
  cat "${FILE}" >"${OUT}/numa.json"
  f1="$(awk '$1 == "numa_hint_faults" { print $2 }' /proc/vmstat)"
  echo "scans=${scans} faults_before=${f0:-none} faults_after=${f1:-none}" >"${OUT}/numa.txt"
  kill "${numahint}"
  wait "${numahint}" 2>/dev/null
  rmmod gestor_containers
}

# Memory a read charges to its reader, and what open files cost: in a
# memory cgroup of its own, gvm memprobe reads the file once (with 2,000
# extra processes, from a fresh load: no buffer kept from before) and opens
# it 10,000 times without reading, and /proc/version as often; then the
# processes exit and two reads from elsewhere must give back most of what
# the module kept in that cgroup's name.
phase_memory() {
  insmod "${KO}"
  GVM_READY=/tmp/ready.memspawn gvm incg "${FS}" gvm spawn 2000 &
  spawner=$!
  wait_for 1200 test -e /tmp/ready.memspawn || log "spawn 2000 not ready"
  mkdir -p "${CG}/memprobe"
  gvm incg "${CG}/memprobe" gvm memprobe "${FILE}" 10000 /proc/version \
    >"${OUT}/memprobe.txt" 2>&1
  kept_before="$(cat "${CG}/memprobe/memory.current")"
  kill "${spawner}"
  wait "${spawner}"
  cat "${FILE}" >/dev/null
  cat "${FILE}" >/dev/null
  echo "kept_before=${kept_before} kept_after=$(cat "${CG}/memprobe/memory.current")" \
    >>"${OUT}/memprobe.txt"
  rmmod gestor_containers
}

# test_wrap_in: the kept command lines' read counter wraps at the third
# read from here. Every read must end (within 30 s), the one at the wrap
# read every command line afresh (none cached) and show what a process
# exec'd to just before it, and the ones after keep command lines again.
phase_wrap() {
  insmod "${KO}"
  GVM_READY=/tmp/ready.wrap gvm incg "${FS}" gvm retitle /tmp/done.wrap &
  wrapper=$!
  wait_for 600 test -e /tmp/ready.wrap || log "wrap retitle not ready"
  echo "wrapper ${wrapper}" >>"${OUT}/manifest.txt"
  cat "${FILE}" >/dev/null
  echo 2 >/sys/module/gestor_containers/parameters/test_wrap_in
  for n in 1 2; do
    check "wrap_read_${n}" "$(gvm within 30 sh -c "cat ${FILE} >${OUT}/wrap-${n}.json" |
      cut -d' ' -f2-)"
  done
  signal_retitle "${wrapper}" USR2 /tmp/done.wrap exec
  for n in 3 4 5; do
    check "wrap_read_${n}" "$(gvm within 30 sh -c "cat ${FILE} >${OUT}/wrap-${n}.json" |
      cut -d' ' -f2-)"
  done
  kill "${wrapper}"
  wait "${wrapper}" 2>/dev/null
  rmmod gestor_containers
}

# Only the initial PID namespace's procfs serves the file: a process in a
# new PID namespace with its own /proc (a container) gets EPERM; the host
# and a bind mount of the host's /proc (how gestor's container reads it)
# still read.
phase_pidns() {
  insmod "${KO}"
  mkdir -p /tmp/hostproc
  mount --bind /proc /tmp/hostproc
  check pidns_host "$(gvm tryread "${FILE}" | cut -d' ' -f1)"
  check pidns_own_proc "$(unshare -p -f --mount-proc gvm tryread "${FILE}")"
  check pidns_host_bind "$(unshare -p -f --mount-proc \
    gvm tryread /tmp/hostproc/sysinfo_202200075 | cut -d' ' -f1)"
  umount /tmp/hostproc
  rmmod gestor_containers
}

# A process whose mmap_lock is held by a fault that waits on a device that
# does not answer, with a writer queued behind it (gvm mmstall), must stall
# neither a read nor rmmod: its command line comes back empty and flagged.
phase_mmstall() {
  insmod /lib/modules/nbd.ko nbds_max=1 max_part=0
  insmod "${KO}"
  GVM_READY=/tmp/ready.mmstall gvm incg "${FS}" \
    gvm mmstall /dev/nbd0 /tmp/released.mmstall 2>"${OUT}/mmstall.txt" &
  stall=$!
  if ! wait_for 1200 sh -c "test -e /tmp/ready.mmstall || ! kill -0 ${stall}" ||
    [ ! -e /tmp/ready.mmstall ]; then
    # Exit 3: the kernel refused the /proc/PID/mem read that holds the lock.
    kill "${stall}" 2>/dev/null
    wait "${stall}"
    if [ $? -eq 3 ]; then
      check mmstall_ready unsupported
    else
      check mmstall_ready no
    fi
    rmmod gestor_containers
    return
  fi
  read -r victim _ </tmp/ready.mmstall
  echo "mmvictim ${victim}" >>"${OUT}/manifest.txt"
  check read_while_mm_locked "$(gvm within 30 \
    sh -c "cat ${FILE} >${OUT}/mmlocked.json" | cut -d' ' -f2-)"
  check rmmod_while_mm_locked "$(gvm within 30 rmmod gestor_containers |
    cut -d' ' -f2-)"
  kill -USR1 "${stall}"
  if wait_for 600 test -e /tmp/released.mmstall; then
    log "mmstall released"
  else
    log "mmstall not released"
  fi
  # A read or rmmod that stalled ends now.
  wait_for 600 sh -c '! grep -q "^gestor_containers " /proc/modules'
  insmod "${KO}"
  cat "${FILE}" >"${OUT}/mmreleased.json"
  rmmod gestor_containers
  kill "${stall}"
  wait "${stall}"
  log "mmstall done"
}

slab_active() {
  echo 1 >"/sys/kernel/slab/$1/shrink" 2>/dev/null
  awk -v n="$1" '$1 == n { print $2 }' /proc/slabinfo
}

vmalloc_kib() {
  awk '$1 == "VmallocUsed:" { print $2 }' /proc/meminfo
}

# A leak per open or read would keep task_structs, mm_structs or seq_file
# buffers: read 200 times (whole and partial) with 300 extra processes,
# let them exit and compare with a warm-up round that did no reads.
phase_leaks() {
  insmod "${KO}"
  GVM_READY=/tmp/ready.leak0 gvm incg "${FS}" gvm spawn 300 &
  spawner=$!
  wait_for 600 test -e /tmp/ready.leak0
  gvm readn "${FILE}" 5
  kill "${spawner}"
  wait "${spawner}"
  sleep 1
  t0="$(slab_active task_struct)"
  m0="$(slab_active mm_struct)"
  v0="$(vmalloc_kib)"
  if [ -e /sys/kernel/debug/kmemleak ]; then
    echo clear >/sys/kernel/debug/kmemleak
  fi

  GVM_READY=/tmp/ready.leak1 gvm incg "${FS}" gvm spawn 300 &
  spawner=$!
  wait_for 600 test -e /tmp/ready.leak1
  gvm readn "${FILE}" 100
  gvm readn "${FILE}" 100 10
  kill "${spawner}"
  wait "${spawner}"
  sleep 1
  t1="$(slab_active task_struct)"
  m1="$(slab_active mm_struct)"
  v1="$(vmalloc_kib)"
  echo "task_struct ${t0} ${t1}" >"${OUT}/leaks.txt"
  echo "mm_struct ${m0} ${m1}" >>"${OUT}/leaks.txt"
  echo "vmalloc_kib ${v0} ${v1}" >>"${OUT}/leaks.txt"
  if [ -e /sys/kernel/debug/kmemleak ]; then
    # kmemleak reports only objects older than 5 s; the module is still
    # loaded, so its functions are named in the backtraces.
    sleep 6
    echo scan >/sys/kernel/debug/kmemleak
    cat /sys/kernel/debug/kmemleak >"${OUT}/kmemleak.txt"
  fi
  rmmod gestor_containers
}

# rmmod while a read is in progress: the reader's copy to its buffer waits
# in a userfaultfd fault, inside read(). rmmod must wait for it
# (proc_entry_rundown) until the fault is served; then the read returns its
# data and the next one fails with EIO.
phase_rmmod_midread() {
  insmod "${KO}"
  rm -f /tmp/ur.ready /tmp/ur.go
  gvm uffdread "${FILE}" /tmp/ur.ready /tmp/ur.go >"${OUT}/uffdread.txt" 2>&1 &
  reader=$!
  if wait_for 300 test -e /tmp/ur.ready; then
    check read_in_progress yes
  else
    check read_in_progress no
  fi
  rmmod gestor_containers &
  rm=$!
  # wchan reads 0 on 5.10 (x86 with the ORC unwinder): the stack says it.
  if wait_for 300 sh -c "grep -q '^proc_entry_rundown\$' /proc/${rm}/wchan ||
    grep -q proc_entry_rundown /proc/${rm}/stack"; then
    check rmmod_waits_for_read yes
  else
    check rmmod_waits_for_read "$(cat "/proc/${rm}/wchan" 2>/dev/null || echo gone)"
  fi
  touch /tmp/ur.go
  if wait "${rm}"; then
    check rmmod_after_read ok
  else
    check rmmod_after_read fail
  fi
  wait "${reader}"
}

# rmmod while a reader holds the file open (mid-document): the file goes,
# the reader's next read fails, nothing oopses.
phase_rmmod_open() {
  insmod "${KO}"
  rm -f /tmp/ho.ready /tmp/ho.go
  gvm holdopen "${FILE}" /tmp/ho.ready /tmp/ho.go >"${OUT}/holdopen.txt" 2>&1 &
  holder=$!
  wait_for 300 test -e /tmp/ho.ready
  if rmmod gestor_containers; then
    check rmmod_while_open ok
  else
    check rmmod_while_open fail
  fi
  check file_gone_while_open "$([ -e "${FILE}" ] && echo no || echo yes)"
  touch /tmp/ho.go
  wait "${holder}"
  insmod "${KO}"
  if gvm json "${FILE}"; then
    check reload_after_open valid
  else
    check reload_after_open invalid
  fi
  rmmod gestor_containers
}

# 2,000 extra processes, 8 readers checking every document, processes and
# threads forking and exiting, a process moving between cgroups and the
# all_processes switch flipping, for 30 s; then rmmod while the readers run.
phase_stress() {
  insmod "${KO}"
  mkdir -p "${OUT}/stress"
  GVM_READY=/tmp/ready.stress gvm incg "${FS}" gvm spawn 2000 &
  spawner=$!
  wait_for 1200 test -e /tmp/ready.stress || log "spawn 2000 not ready"
  log "2000 processes spawned"
  gvm incg "${SD}" gvm churn 30 >"${OUT}/stress/churn.txt" &
  churn1=$!
  gvm incg "${USER}" gvm churn 30 >"${OUT}/stress/churn-outside.txt" &
  churn2=$!
  gvm incg "${POD}" gvm tchurn 30 >"${OUT}/stress/tchurn.txt" &
  churn3=$!
  gvm incg "${CRI}" gvm sleep &
  mover=$!
  # Processes that exec all the time: their command lines must be whole.
  GVM_READY=/tmp/ready.exec1 gvm incg "${SD}" gvm execloop &
  exec1=$!
  GVM_READY=/tmp/ready.exec2 gvm incg "${FS}" gvm execloop &
  exec2=$!
  wait_for 300 test -e /tmp/ready.exec1 || log "execloop 1 not ready"
  wait_for 300 test -e /tmp/ready.exec2 || log "execloop 2 not ready"
  (
    end=$(($(date +%s) + 30))
    while [ "$(date +%s)" -lt "${end}" ]; do
      echo "${mover}" >"${USER}/cgroup.procs"
      echo "${mover}" >"${CRI}/cgroup.procs"
      echo 1 >/sys/module/gestor_containers/parameters/all_processes
      usleep 200000
      echo 0 >/sys/module/gestor_containers/parameters/all_processes
      usleep 200000
    done
  ) &
  flipper=$!
  GVM_EXECLOOP="${exec1},${exec2}" gvm readers 8 1200 "${FILE}" "${OUT}/stress" &
  readers=$!
  wait "${churn1}" "${churn2}" "${churn3}" "${flipper}"
  # Each reader has read 5 times (a slow debug kernel takes longer).
  wait_for 6000 sh -c "[ \$(ls ${OUT}/stress | grep -c '^min-reads-') -ge 8 ]" ||
    log "readers did not read 5 times each"
  log "churn done, rmmod with the readers running"
  if rmmod gestor_containers; then
    check rmmod_under_readers ok
  else
    check rmmod_under_readers fail
  fi
  wait "${readers}"
  kill "${spawner}" "${mover}" "${exec1}" "${exec2}"
  wait "${spawner}" "${mover}" "${exec1}" "${exec2}"
  insmod "${KO}"
  if gvm json "${FILE}"; then
    check reload_after_stress valid
  else
    check reload_after_stress invalid
  fi
  rmmod gestor_containers
}

# signal_retitle PID SIGNAL DONE WANT: send SIGNAL to gvm retitle PID and
# wait until it says WANT in DONE.
signal_retitle() {
  rm -f "$3"
  kill "-$2" "$1"
  wait_for 300 grep -qx "$4" "$3" || log "retitle $1: no '$4' after $2"
}

# Command lines kept between reads (cmdline_refresh, default 8): a process
# that rewrites its argv in place (gvm retitle, SIGUSR1) shows the new text
# at its refresh, read 2 + pid % cmdline_refresh after the module is loaded
# (the first read saw it, and refreshes are spread by pid; the refresh is
# picked so that 2 to 12 reads show the kept text), and on every read
# once it was seen rewriting; a move of its arguments (PR_SET_MM) and an
# exec show at the next read; with cmdline_refresh=1 every read reads every
# command line.  A process that did not run is not read again: text written
# into a sleeping one through /proc/PID/mem (gvm poke) shows only once it
# has run (SIGALRM), unless a process sharing its memory could have written
# it (gvm retitle share: at its refresh).  Documents cmdcache-N.json, checked
# by check_output.py.
phase_cmdcache() {
  param=/sys/module/gestor_containers/parameters/cmdline_refresh
  insmod "${KO}"
  check cmdline_refresh_default "$(cat "${param}")"
  GVM_READY=/tmp/ready.retitle gvm incg "${FS}" gvm retitle /tmp/done.retitle &
  retitle=$!
  wait_for 600 test -e /tmp/ready.retitle || log "retitle not ready"
  refresh=8
  while [ $((retitle % refresh)) -lt 2 ] || [ $((retitle % refresh)) -gt 12 ]; do
    refresh=$((refresh + 1))
  done
  echo "${refresh}" >"${param}"
  echo "retitle ${retitle}" >>"${OUT}/manifest.txt"
  echo "refresh ${refresh}" >>"${OUT}/manifest.txt"
  cat "${FILE}" >"${OUT}/cmdcache-1.json"
  signal_retitle "${retitle}" USR1 /tmp/done.retitle "usr1 1"
  for n in 2 3 4 5 6 7 8 9 10 11 12 13 14; do
    cat "${FILE}" >"${OUT}/cmdcache-${n}.json"
  done
  signal_retitle "${retitle}" USR1 /tmp/done.retitle "usr1 2"
  cat "${FILE}" >"${OUT}/cmdcache-15.json"
  signal_retitle "${retitle}" HUP /tmp/done.retitle moved
  cat "${FILE}" >"${OUT}/cmdcache-16.json"
  signal_retitle "${retitle}" USR2 /tmp/done.retitle exec
  cat "${FILE}" >"${OUT}/cmdcache-17.json"

  for bad in 0 1001 x; do
    if echo "${bad}" >"${param}" 2>/dev/null; then
      check "reject_cmdline_refresh_${bad}" accepted
    else
      check "reject_cmdline_refresh_${bad}" refused
    fi
  done
  echo 1 >"${param}"
  rm -f /tmp/ready.retitle2
  GVM_READY=/tmp/ready.retitle2 gvm incg "${FS}" gvm retitle /tmp/done.retitle2 &
  retitle2=$!
  wait_for 600 test -e /tmp/ready.retitle2 || log "retitle2 not ready"
  echo "retitle2 ${retitle2}" >>"${OUT}/manifest.txt"
  cat "${FILE}" >"${OUT}/cmdcache-18.json"
  signal_retitle "${retitle2}" USR1 /tmp/done.retitle2 "usr1 1"
  cat "${FILE}" >"${OUT}/cmdcache-19.json"

  echo 2 >"${param}"
  rm -f /tmp/ready.retitle3 /tmp/ready.retitle4
  GVM_READY=/tmp/ready.retitle3 gvm incg "${FS}" gvm retitle /tmp/done.retitle3 &
  retitle3=$!
  GVM_READY=/tmp/ready.retitle4 gvm incg "${FS}" \
    gvm retitle /tmp/done.retitle4 share &
  retitle4=$!
  wait_for 600 test -e /tmp/ready.retitle3 || log "retitle3 not ready"
  wait_for 600 test -e /tmp/ready.retitle4 || log "retitle4 not ready"
  # Off its CPU in sigwait (rt_sigtimedwait, 128): /proc/PID/syscall waits
  # for the task to be inactive, so the first read's figures for it are
  # final until it is woken.
  wait_for 600 grep -q '^128 ' "/proc/${retitle3}/syscall" ||
    log "retitle3 not asleep"
  echo "retitle3 ${retitle3}" >>"${OUT}/manifest.txt"
  echo "retitle4 ${retitle4}" >>"${OUT}/manifest.txt"
  cat "${FILE}" >"${OUT}/cmdcache-20.json"
  check poke_sleeping "$(gvm poke "${retitle3}" poked01 2>&1)"
  check poke_shared "$(gvm poke "${retitle4}" poked01 2>&1)"
  for n in 21 22 23; do
    cat "${FILE}" >"${OUT}/cmdcache-${n}.json"
  done
  signal_retitle "${retitle3}" ALRM /tmp/done.retitle3 "alrm 1"
  cat "${FILE}" >"${OUT}/cmdcache-24.json"
  kill "${retitle}" "${retitle2}" "${retitle3}" "${retitle4}"
  wait "${retitle}" "${retitle2}" "${retitle3}" "${retitle4}" 2>/dev/null
  rmmod gestor_containers
}

# With lockdown=integrity (as under Secure Boot) an unsigned module must be
# refused: the README's reason to sign with a MOK.
phase_lockdown() {
  if echo integrity >/sys/kernel/security/lockdown 2>/dev/null; then
    if insmod "${KO}" 2>/dev/null; then
      check lockdown_refuses_unsigned loaded
      rmmod gestor_containers
    else
      check lockdown_refuses_unsigned refused
    fi
  else
    check lockdown_refuses_unsigned unavailable
  fi
}

mode_test() {
  setup_containers
  phase_numa
  start_workloads
  phase_functional
  phase_pidns
  phase_leaks
  phase_rmmod_open
  phase_rmmod_midread
  phase_mmstall
  phase_cmdcache
  phase_wrap
  phase_memory
  phase_stress
  phase_lockdown
}

# Read time of the module against a userspace scan of /proc, at each process
# count in gestor.counts (processes in containers). gestor.population=
# active: the processes each wake up and do a little work before every read
# and scan (gvm spawn N active), so that none is spared as "did not run";
# each count is then a new population of that many.
mode_bench() {
  counts="$(sed -n 's/.*gestor\.counts=\([0-9,]*\).*/\1/p' /proc/cmdline)"
  rounds="$(sed -n 's/.*gestor\.rounds=\([0-9]*\).*/\1/p' /proc/cmdline)"
  population="$(sed -n 's/.*gestor\.population=\([a-z]*\).*/\1/p' /proc/cmdline)"
  setup_containers
  insmod "${KO}"
  have=0
  spawner=""
  for target in $(echo "${counts}" | tr ',' ' '); do
    if [ "${population}" = active ]; then
      if [ -n "${spawner}" ]; then
        kill "${spawner}"
        wait "${spawner}"
      fi
      rm -f /tmp/ready.bench
      GVM_ACTIVE=/tmp/gvm-active GVM_READY=/tmp/ready.bench \
        gvm incg "${FS}" gvm spawn "${target}" active &
      spawner=$!
      wait_for 6000 test -e /tmp/ready.bench || log "spawn ${target} not ready"
    elif [ $((target - have)) -gt 0 ]; then
      rm -f /tmp/ready.bench
      GVM_READY=/tmp/ready.bench gvm incg "${FS}" gvm spawn $((target - have)) &
      wait_for 6000 test -e /tmp/ready.bench || log "spawn $((target - have)) not ready"
      have="${target}"
    fi
    sleep 1
    log "bench at ${target} processes (${population:-sleeping})"
    {
      echo "target=${target}"
      if [ "${population}" = active ]; then
        GVM_ACTIVE=/tmp/gvm-active gvm compare "${FILE}" "${rounds:-5}"
      else
        gvm compare "${FILE}" "${rounds:-5}"
      fi
    } >>"${OUT}/bench.txt" 2>&1
    if [ "${target}" = 2000 ]; then
      cat "${FILE}" >"${OUT}/bench-2000.json"
    fi
  done
  rmmod gestor_containers
}

# 100,000 processes in a container (gvm spawnvm: CLONE_VM children, so
# that they fit in the guest), read end to end once from a memory cgroup
# of its own: time, bytes and the memory charged (big.txt); the document
# goes to the host (big.json) for the daemon's parser.
mode_big() {
  count="$(sed -n 's/.*gestor\.count=\([0-9]*\).*/\1/p' /proc/cmdline)"
  setup_containers
  echo 4194304 >/proc/sys/kernel/pid_max
  echo $((count * 2 + 10000)) >/proc/sys/kernel/threads-max
  insmod "${KO}"
  log "spawning ${count} processes"
  GVM_READY=/tmp/ready.big gvm incg "${FS}" gvm spawnvm "${count}" &
  spawner=$!
  wait_for 36000 test -e /tmp/ready.big || log "spawnvm ${count} not ready"
  log "reading"
  mkdir -p "${CG}/bigread"
  cat "${FILE}" >/dev/null
  gvm incg "${CG}/bigread" gvm bigread "${FILE}" "${OUT}/big.json" >"${OUT}/big.txt" 2>&1
  gvm incg "${CG}/bigread" gvm bigread "${FILE}" "${OUT}/big.json" >>"${OUT}/big.txt" 2>&1
  echo "processes=$(grep -c '^{"pid"' "${OUT}/big.json")" >>"${OUT}/big.txt"
  log "$(cat "${OUT}/big.txt")"
  kill "${spawner}"
  wait "${spawner}"
  rmmod gestor_containers
}

main() {
  boot
  case "${mode}" in
    test) mode_test ;;
    bench) mode_bench ;;
    big) mode_big ;;
    *) log "unknown mode '${mode}'" ;;
  esac
  finish
}

main "$@"
