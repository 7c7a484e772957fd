#!/usr/bin/env python3
"""Check what the qemu guest of kernel_module/tests/run.sh left behind.

The guest (tests/vm/init.sh) reads /proc/sysinfo_202200075 while a known set
of processes runs in container-like cgroups, and dumps /proc/<pid>/{cgroup,
stat,statm,io} of every process just before and just after the read. This
script validates the documents against the repo's JSON Schema and compares
every listed figure with that ground truth, then checks the other phases
(parameters, leaks, rmmod with the file open, stress, dmesg).

Prints "ok - NAME" or "not ok - NAME: DETAIL" per check and a closing
"checks: N passed, M failed" line; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

# The hostile process (tests/vm/gvm.c holds the same bytes).
HOSTILE_COMM = b'q"\\\n%s%n\xff\x01\xc3'
HOSTILE_ARGV = [
    b'/bin/h"ost\\ile',
    b"line1\nline2",
    b"%s%n%x",
    b"tab\there",
    b"",
    b"\xff\xfe",
    b"caf\xc3\xa9",
    b"\xe2\x82",
    b"A",
    b"\x01\x1f\x7f",
    b"emoji\xf0\x9f\x98\x80",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"end",
]
# gvm longargs: the first 1,024 bytes of its joined argv end inside "\xc3\xa9".
LONGARGS = (b"gvm longargs " + b"a" * 1010 + b"\xc3\xa9 " + b"b" * 400)[:1024]
# A cgroup name (tests/vm/init.sh hostile_cgroup_name holds the same bytes).
HOSTILE_CGROUP = b'q"\\\xffx'
PATH_MAX = 4096

USER_HZ_NS = 10_000_000  # /proc/<pid>/stat counts CPU time in 1/100 s
MIB = 1024 * 1024
# The parents under which each runtime creates its containers' cgroups,
# anchored at the root of the hierarchy; below the ID, a container's own
# sub-cgroups. Nothing else names a container.
_HEX = r"(?P<id>[0-9a-f]{64})"
_POD = r"pod[0-9a-f_-]{1,64}"
_END = r"(?:/|\Z)"
CONTAINER_PATHS = [
    re.compile(pattern + _END)
    for pattern in (
        rf"/docker/{_HEX}",
        rf"/(?:default|k8s\.io)/{_HEX}",
        rf"/system\.slice/(?:docker|nerdctl)-{_HEX}\.scope",
        rf"/machine\.slice/libpod-{_HEX}\.scope",
        rf"/kubepods/(?:(?:besteffort|burstable)/)?{_POD}/(?:crio-)?{_HEX}",
        r"/kubepods\.slice/(?:kubepods-(?P<qos>besteffort|burstable)\.slice/"
        rf"kubepods-(?P=qos)-|kubepods-){_POD}\.slice/"
        rf"(?:cri-containerd|crio|docker)-{_HEX}\.scope",
    )
]
BAD_DMESG = re.compile(
    r"BUG:|WARNING:|Oops|Call Trace|general protection|soft lockup|hard LOCKUP"
    r"|rcu_.*stall|detected stall|RCU stall|blocked for more than|Kernel panic"
    r"|UBSAN|KASAN|list_add corruption|refcount_t:"
)
IO_FIELDS = (
    "rchar",
    "wchar",
    "syscr",
    "syscw",
    "read_bytes",
    "write_bytes",
    "cancelled_write_bytes",
)
ROLE_CONTAINER = {
    "burner": "sd",
    "zleader": "sd",
    "reaper": "sd",
    "holder": "fs",
    "longargs": "fs",
    "zombie": "fs",
    "zombiechild": "fs",
    "swapper": "fs",
    "hostile": "cri",
    "v1sleeper": "v1",
    "writer": "pod",
    "cancelwrite": "pod",
    "nerd": "nerd",
    "ctrd": "ctrd",
    "kfs": "kfs",
    "crio": "crio",
}
# Processes in sub-cgroups of a container.
SUB_ROLES = {"hostilecg": "fs", "deep": "fs"}
DECOY_ROLES = (
    "decoy_user_id",
    "decoy_session_scope",
    "decoy_session_docker",
    "decoy_hex63",
    "decoy_hex65",
    "decoy_upper",
    "decoy_scopex",
    "decoy_pod_slice",
)
OUTSIDE_ROLES = ("user", "conmon", "rootcg", "hostileout", *DECOY_ROLES)


def decode_per_byte(raw: bytes) -> str:
    """Decode like the module: each byte outside well-formed UTF-8 -> U+FFFD.

    Independent of the module's own table: a sequence is well formed when
    Python's strict decoder accepts it as exactly one character.
    """
    out = []
    i = 0
    while i < len(raw):
        for n in (1, 2, 3, 4):
            try:
                ch = raw[i : i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                out.append(ch)
                i += n
                break
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def container_of(cgroup_lines: list[str]) -> tuple[str | None, str]:
    """The (ID, path) the module should report for /proc/<pid>/cgroup lines.

    The cgroup v2 path first, then the v1 ones in the module's (controller)
    order; in this guest only the pids hierarchy is v1, so the order of the
    v1 lines does not matter.
    """
    v2 = next((ln[3:] for ln in cgroup_lines if ln.startswith("0::")), "/")
    paths = [v2] + [ln.split(":", 2)[2] for ln in cgroup_lines if not ln.startswith("0::")]
    for path in paths:
        for pattern in CONTAINER_PATHS:
            m = pattern.match(path)
            if m:
                return m.group("id"), path
    return None, v2


@dataclass
class Proc:
    pid: int
    cgroup: list[str] = field(default_factory=list)
    stat: list[bytes] = field(default_factory=list)
    comm: bytes = b""
    statm: list[int] = field(default_factory=list)
    io: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(self.cgroup and self.stat and self.statm)

    def stat_field(self, n: int) -> int:
        """Field n (1-based, as in proc(5)) of /proc/<pid>/stat, n >= 3."""
        return int(self.stat[n - 3])


def parse_dump(path: Path) -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for block in path.read_bytes().split(b"== ")[1:]:
        head, _, rest = block.partition(b"\n")
        proc = Proc(int(head))
        cg, _, rest = rest.partition(b"-- stat\n")
        # As the module prints them: bytes outside UTF-8 become U+FFFD.
        proc.cgroup = [decode_per_byte(ln) for ln in cg.split(b"\n") if ln]
        stat, _, rest = rest.partition(b"\n-- statm\n")
        stat = stat.strip(b"\n")
        if stat:
            proc.comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")]
            proc.stat = stat[stat.rindex(b")") + 2 :].split()
        statm, _, io = rest.partition(b"-- io\n")
        proc.statm = [int(x) for x in statm.split()]
        for line in io.decode().splitlines():
            key, _, value = line.partition(": ")
            if key in IO_FIELDS:
                proc.io[key] = int(value)
        procs[proc.pid] = proc
    return procs


def parse_kv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def meminfo(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


class Checker:
    def __init__(self, results: Path, schema: Path, cpus: int, gestor: str | None):
        self.results = results
        self.validator = jsonschema.Draft202012Validator(json.loads(schema.read_text()))
        self.cpus = cpus
        self.gestor = gestor
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: object = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok - {name}")
        else:
            self.failed += 1
            print(f"not ok - {name}: {detail}")
        return ok

    def load(self, name: str) -> dict | None:
        path = self.results / name
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            self.check(f"{name} is JSON", False, exc)
            return None
        errors = sorted(self.validator.iter_errors(doc), key=lambda e: list(e.path))
        detail = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:3])
        self.check(f"{name} validates against the schema", not errors, detail)
        return doc

    # --- the read in the quiet phase --------------------------------------

    def manifest(self) -> dict[str, int]:
        """The guest's manifest.txt: "ROLE PID" lines (and "refresh N")."""
        return {
            role: int(pid)
            for role, pid in (
                ln.split() for ln in (self.results / "manifest.txt").read_text().splitlines()
            )
        }

    def run(self) -> None:
        before = parse_dump(self.results / "before/procs.txt")
        after = parse_dump(self.results / "after/procs.txt")
        manifest = self.manifest()
        containers = {}
        for line in (self.results / "containers.txt").read_text().splitlines():
            key, cid, path = line.split()
            containers[key] = (cid, path)

        default = self.load("default.json")
        if default:
            self.section(
                "default.json",
                self.check_default,
                default,
                before,
                after,
                manifest,
                containers,
            )
            self.section("system", self.check_system, default["system"], default)
        everything = self.load("all.json")
        if everything:
            self.section("all.json", self.check_all, everything, after, manifest, containers)
        named = self.load("named.json")
        if named:
            self.check(
                "named file lists every process",
                any(p["pid"] == 1 for p in named["processes"]),
            )
        self.section("phases", self.check_phases)
        self.section("stress", self.check_stress)
        self.section("dmesg", self.check_dmesg)
        if self.gestor:
            self.section("gestor snapshot", self.check_daemon_parser)

    def section(self, name: str, checks, *args) -> None:
        """Run a group of checks; a missing field or file fails it, not the rest."""
        try:
            checks(*args)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            self.check(f"{name}: checks ran to the end", False, repr(exc))

    def check_default(self, doc, before, after, manifest, containers) -> None:
        self.check("version and source", doc["version"] == 3 and doc["source"] == "kernel")
        listed = {p["pid"]: p for p in doc["processes"]}
        self.check("no pid listed twice", len(listed) == len(doc["processes"]))

        # Exactly the container processes are listed, with the right IDs.
        stable = {
            pid: p
            for pid, p in after.items()
            if pid in before and p.complete and before[pid].cgroup == p.cgroup
        }
        missing, wrong = [], []
        for pid, proc in stable.items():
            cid, path = container_of(proc.cgroup)
            if cid is None:
                continue
            entry = listed.get(pid)
            if entry is None:
                missing.append(pid)
            elif (entry["container_id"], entry["cgroup"]) != (cid, path):
                wrong.append((pid, entry["container_id"], entry["cgroup"], cid, path))
        self.check("every container process is listed", not missing, missing)
        self.check(
            "container IDs and cgroup paths match /proc/<pid>/cgroup",
            not wrong,
            wrong[:3],
        )
        extra = [
            pid
            for pid in listed
            if container_of((after.get(pid) or before.get(pid) or Proc(pid)).cgroup)[0] is None
        ]
        self.check("no process outside a container is listed", not extra, extra)
        self.check(
            "container_id is never null by default",
            all(p["container_id"] for p in doc["processes"]),
        )

        for role, key in ROLE_CONTAINER.items():
            entry = listed.get(manifest.get(role, -1))
            cid, path = containers[key]
            self.check(
                f"{role} listed in its {key} container",
                entry is not None and entry["container_id"] == cid and entry["cgroup"] == path,
                entry and (entry["container_id"], entry["cgroup"]),
            )
        for role, key in SUB_ROLES.items():
            entry = listed.get(manifest.get(role, -1))
            cid, path = containers[key]
            self.check(
                f"{role} listed in its {key} container, from a sub-cgroup",
                entry is not None
                and entry["container_id"] == cid
                and entry["cgroup"].startswith(path + "/"),
                entry and (entry["container_id"], entry["cgroup"][:120]),
            )
        hostilecg = listed.get(manifest["hostilecg"])
        self.check(
            "a cgroup name with a quote, a backslash and 0xff round-trips",
            hostilecg is not None
            and hostilecg["cgroup"] == containers["fs"][1] + "/" + decode_per_byte(HOSTILE_CGROUP),
            hostilecg and repr(hostilecg["cgroup"]),
        )
        deep = listed.get(manifest["deep"])
        self.check(
            "a cgroup path of PATH_MAX - 1 bytes is printed whole",
            deep is not None and len(deep["cgroup"]) == PATH_MAX - 1,
            deep and len(deep["cgroup"]),
        )
        for role in OUTSIDE_ROLES:
            self.check(f"{role} (outside containers) not listed", manifest[role] not in listed)
        self.check("init not listed", 1 not in listed)
        self.check(
            "the first read after loading keeps no command line (none cached)",
            not any(p["cmdline_cached"] for p in doc["processes"]),
        )
        longargs = listed.get(manifest["longargs"])
        self.check(
            "a command line over 1,024 bytes is flagged cmdline_truncated",
            longargs is not None and longargs["cmdline_truncated"] is True,
            longargs and longargs["cmdline_truncated"],
        )
        cut = [p["pid"] for p in doc["processes"] if p["cmdline_truncated"]]
        self.check(
            "no other command line is flagged cmdline_truncated",
            cut == [manifest["longargs"]],
            cut,
        )
        self.check(
            "no cgroup path of at most 4,095 bytes is flagged cgroup_truncated",
            not any(p["cgroup_truncated"] for p in doc["processes"]),
        )
        unavailable = [p["pid"] for p in doc["processes"] if p.get("cmdline_unavailable", True)]
        self.check(
            "no command line unavailable when nothing holds a lock",
            not unavailable,
            unavailable,
        )

        self.check_hostile(listed.get(manifest["hostile"]))
        self.section(
            "figures",
            self.check_figures,
            doc,
            listed,
            before,
            after,
            manifest,
            stable,
        )

    def check_hostile(self, entry) -> None:
        if not self.check("hostile process listed", entry is not None):
            return
        self.check(
            "hostile comm round-trips",
            entry["comm"] == decode_per_byte(HOSTILE_COMM),
            repr(entry["comm"]),
        )
        self.check(
            "hostile cmdline round-trips",
            entry["cmdline"] == decode_per_byte(b" ".join(HOSTILE_ARGV)),
            repr(entry["cmdline"]),
        )

    def check_figures(self, doc, listed, before, after, manifest, stable) -> None:
        uptime = doc["uptime_ns"]
        mem_total = doc["system"]["mem_total_kib"]
        burner = listed.get(manifest["burner"])
        if burner:
            wall = uptime - burner["start_time_ns"]
            self.check(
                "burner CPU time plausible (>= 0.5 s, <= wall time since start)",
                500_000_000 <= burner["cpu_time_ns"] <= wall + 50_000_000,
                (burner["cpu_time_ns"], wall),
            )
        holder = listed.get(manifest["holder"])
        if holder:
            self.check(
                "holder RSS covers its 64 MiB",
                64 * 1024 <= holder["rss_kib"] <= 68 * 1024,
                holder["rss_kib"],
            )
            self.check(
                "holder mem_pct_x100 = RSS / MemTotal",
                holder["mem_pct_x100"] == holder["rss_kib"] * 10000 // mem_total,
                (holder["mem_pct_x100"], holder["rss_kib"], mem_total),
            )
        writer = listed.get(manifest["writer"])
        if writer:
            self.check(
                "dd writer's write_bytes = the 24 MiB it wrote",
                24 * MIB <= writer["write_bytes"] <= 25 * MIB and writer["wchar"] >= 24 * MIB,
                (writer["write_bytes"], writer["wchar"]),
            )
        zleader = listed.get(manifest["zleader"])
        if zleader:
            self.check(
                "exited leader: memory and cmdline found through a live thread",
                zleader["cmdline"] == "gvm zleader" and zleader["rss_kib"] >= 8 * 1024,
                (zleader["cmdline"], zleader["rss_kib"], zleader["state"]),
            )
        reaper = listed.get(manifest["reaper"])
        if self.check("reaper listed", reaper is not None):
            self.check(
                "reaper's children_cpu_time_ns covers the 0.3 s its child burnt",
                300_000_000
                <= reaper.get("children_cpu_time_ns", -1)
                <= uptime - reaper["start_time_ns"]
                and reaper["cpu_time_ns"] < reaper.get("children_cpu_time_ns", -1),
                (reaper.get("children_cpu_time_ns", -1), reaper["cpu_time_ns"]),
            )
        cancel = listed.get(manifest["cancelwrite"])
        if self.check("cancelwrite listed", cancel is not None):
            self.check(
                "cancelwrite: 4 MiB written and cancelled (write_bytes stays raw)",
                cancel.get("cancelled_write_bytes", -1) == 4 * MIB
                and cancel["write_bytes"] == 4 * MIB,
                (cancel["write_bytes"], cancel.get("cancelled_write_bytes", -1)),
            )
        zombie = listed.get(manifest["zombiechild"])
        if zombie:
            self.check(
                "zombie: state Z, empty cmdline, no memory",
                zombie["state"] == "Z" and zombie["cmdline"] == "" and zombie["rss_kib"] == 0,
                zombie,
            )
        longargs = listed.get(manifest["longargs"])
        if longargs:
            self.check(
                "cmdline cut at 1,024 bytes, the split character replaced",
                longargs["cmdline"] == decode_per_byte(LONGARGS),
                longargs["cmdline"][-8:],
            )
        self.check_against_proc(listed, before, after, stable)

    def check_against_proc(self, listed, before, after, stable) -> None:
        """Every listed process against /proc/<pid>/... just before and after."""
        problems = []
        for pid, entry in listed.items():
            b, a = before.get(pid), after.get(pid)
            if pid not in stable or not b.stat or not a.stat:
                continue

            def within(name, value, lo, hi, slack=0, pid=pid):
                if not min(lo, hi) - slack <= value <= max(lo, hi) + slack:
                    problems.append((pid, name, value, lo, hi))

            if entry["ppid"] != a.stat_field(4):
                problems.append((pid, "ppid", entry["ppid"], a.stat_field(4)))
            if entry["comm"] != decode_per_byte(a.comm):
                problems.append((pid, "comm", entry["comm"], a.comm))
            if entry["state"] not in (b.stat[0].decode(), a.stat[0].decode()):
                problems.append((pid, "state", entry["state"], b.stat[0], a.stat[0]))
            start_ticks = a.stat_field(22)
            within(
                "start_time_ns",
                entry["start_time_ns"] // USER_HZ_NS,
                start_ticks,
                start_ticks,
                1,
            )
            # /proc/<pid>/stat{,m} show no memory once the leader exited, even
            # while other threads run; the module finds the mm through them.
            if not (a.stat[0] == b"Z" and a.stat_field(23) == 0):
                within(
                    "vsz_kib",
                    entry["vsz_kib"],
                    b.stat_field(23) // 1024,
                    a.stat_field(23) // 1024,
                )
                within("rss_kib", entry["rss_kib"], b.statm[1] * 4, a.statm[1] * 4)
            cpu_b = (b.stat_field(14) + b.stat_field(15)) * USER_HZ_NS
            cpu_a = (a.stat_field(14) + a.stat_field(15)) * USER_HZ_NS
            within("cpu_time_ns", entry["cpu_time_ns"], cpu_b, cpu_a, 2 * USER_HZ_NS)
            child_b = (b.stat_field(16) + b.stat_field(17)) * USER_HZ_NS
            child_a = (a.stat_field(16) + a.stat_field(17)) * USER_HZ_NS
            within(
                "children_cpu_time_ns",
                entry.get("children_cpu_time_ns", -1),
                child_b,
                child_a,
                2 * USER_HZ_NS,
            )
            if b.io and a.io:
                for key in IO_FIELDS:
                    within(key, entry.get(key, -1), b.io[key], a.io[key])
        self.check(
            "every figure agrees with /proc/<pid>/{stat,statm,io} around the read",
            not problems,
            problems[:5],
        )

    def check_system(self, system, doc) -> None:
        mi_b = meminfo(self.results / "before/meminfo")
        mi_a = meminfo(self.results / "after/meminfo")
        self.check("cpu_count", system["cpu_count"] == self.cpus, system["cpu_count"])
        self.check(
            "mem_total_kib = MemTotal",
            system["mem_total_kib"] == mi_a["MemTotal"],
            (system["mem_total_kib"], mi_a["MemTotal"]),
        )
        self.check(
            "mem_used_kib = total - available",
            system["mem_used_kib"] == system["mem_total_kib"] - system["mem_available_kib"],
        )
        near = []
        for key, name in (
            ("mem_free_kib", "MemFree"),
            ("mem_available_kib", "MemAvailable"),
            ("mem_cached_kib", "Cached"),
        ):
            lo, hi = sorted((mi_b[name], mi_a[name]))
            if not lo - 32 * 1024 <= system[key] <= hi + 32 * 1024:
                near.append((key, system[key], lo, hi))
        self.check("memory figures agree with /proc/meminfo", not near, near)
        lo, hi = sorted((mi_b["SwapFree"], mi_a["SwapFree"]))
        self.check(
            "swap_total_kib = SwapTotal, swap_free_kib = SwapFree (swap in use)",
            mi_a["SwapTotal"] > 0
            and system["swap_total_kib"] == mi_a["SwapTotal"]
            and lo <= system["swap_free_kib"] <= hi
            and system["swap_free_kib"] < system["swap_total_kib"],
            (system["swap_total_kib"], system["swap_free_kib"], mi_a["SwapTotal"], lo),
        )
        names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        stat_b = [
            int(x) * USER_HZ_NS for x in (self.results / "before/stat").read_text().split()[1:9]
        ]
        stat_a = [
            int(x) * USER_HZ_NS for x in (self.results / "after/stat").read_text().split()[1:9]
        ]
        off = []
        for i, name in enumerate(names):
            value = system["cpu_time_ns"][name]
            if (
                not stat_b[i] - 2 * USER_HZ_NS * self.cpus
                <= value
                <= stat_a[i] + 2 * USER_HZ_NS * self.cpus
            ):
                off.append((name, value, stat_b[i], stat_a[i]))
        self.check("cpu_time_ns per state agrees with /proc/stat", not off, off)
        up_b = float((self.results / "before/uptime").read_text().split()[0])
        up_a = float((self.results / "after/uptime").read_text().split()[0])
        self.check(
            "uptime_ns between the two /proc/uptime readings",
            up_b - 0.01 <= doc["uptime_ns"] / 1e9 <= up_a + 0.01,
            (doc["uptime_ns"], up_b, up_a),
        )
        date = int((self.results / "before/date").read_text())
        self.check(
            "timestamp_ns is the wall clock",
            abs(doc["timestamp_ns"] / 1e9 - date) <= 3,
            (doc["timestamp_ns"], date),
        )

    def check_all(self, doc, after, manifest, containers) -> None:
        listed = {p["pid"]: p for p in doc["processes"]}
        init = listed.get(1)
        self.check(
            "all_processes: init listed with a null container_id",
            init is not None and init["container_id"] is None and init["cgroup"] == "/",
            init,
        )
        kthreadd = listed.get(2)
        self.check(
            "all_processes: kernel thread listed with an empty cmdline",
            kthreadd is not None and kthreadd["cmdline"] == "" and kthreadd["ppid"] == 0,
            kthreadd,
        )
        user = listed.get(manifest["user"])
        self.check(
            "all_processes: non-container process has its cgroup v2 path",
            user is not None and user["container_id"] is None and user["cgroup"] == "/user.slice",
            user,
        )
        for role in ("conmon", *DECOY_ROLES):
            entry = listed.get(manifest[role])
            self.check(
                f"all_processes: {role} is in no container",
                entry is not None and entry["container_id"] is None,
                entry and (entry["container_id"], entry["cgroup"]),
            )
        hostileout = listed.get(manifest["hostileout"])
        self.check(
            "all_processes: a hostile cgroup name outside containers round-trips",
            hostileout is not None
            and hostileout["cgroup"] == "/user.slice/" + decode_per_byte(HOSTILE_CGROUP),
            hostileout and repr(hostileout["cgroup"]),
        )
        holder = listed.get(manifest["holder"])
        self.check(
            "all_processes: container processes keep their ID",
            holder is not None and holder["container_id"] == containers["fs"][0],
        )
        missing = [pid for pid in after if pid not in listed and after[pid].complete]
        self.check("all_processes lists every process", len(missing) <= 2, missing)

    # --- the other phases ---------------------------------------------------

    def check_phases(self) -> None:
        checks = parse_kv(self.results / "checks.txt")
        expected = {
            "default_mode": "400",
            "default_gone_after_rmmod": "yes",
            "named_exists": "yes",
            "named_mode": "444",
            "named_default_absent": "yes",
            "reject_proc_name_a/b": "refused",
            "reject_proc_name_": "refused",
            "reject_proc_mode_0666": "refused",
            "reject_proc_mode_0": "refused",
            "reject_proc_name_taken": "refused",
            "pidns_host": "ok",
            "pidns_own_proc": "errno EPERM",
            "pidns_host_bind": "ok",
            "read_in_progress": "yes",
            "rmmod_waits_for_read": "yes",
            "rmmod_after_read": "ok",
            "read_while_mm_locked": "done rc=0",
            "rmmod_while_mm_locked": "done rc=0",
            "rmmod_while_open": "ok",
            "file_gone_while_open": "yes",
            "reload_after_open": "valid",
            "rmmod_under_readers": "ok",
            "reload_after_stress": "valid",
            "lockdown_refuses_unsigned": "refused",
            "cmdline_refresh_default": "8",
            "reject_cmdline_refresh_0": "refused",
            "reject_cmdline_refresh_1001": "refused",
            "reject_cmdline_refresh_x": "refused",
            "poke_sleeping": "poked",
            "poke_shared": "poked",
        }
        if checks.get("mmstall_ready") == "unsupported":
            # Sid's 7.2 fails the /proc/PID/mem read of the nbd page with EIO
            # before any request reaches the server: no stuck mmap_lock to test.
            print(
                "skip - mmap_lock held by a stuck fault: this kernel refuses the"
                f" /proc/PID/mem read that would hold it ({self.results / 'mmstall.txt'})"
            )
            for key in ("read_while_mm_locked", "rmmod_while_mm_locked"):
                del expected[key]
        for key, want in expected.items():
            self.check(f"guest: {key}", checks.get(key) == want, checks.get(key))

        holdopen = (self.results / "holdopen.txt").read_text()
        self.check(
            "read after rmmod on a file held open fails with EIO",
            "first read 100" in holdopen and "second read -1 errno EIO" in holdopen,
            holdopen,
        )
        uffdread = (self.results / "uffdread.txt").read_text()
        self.check(
            "read in progress during rmmod: it returns its data, the next one EIO",
            re.search(r"read [1-9]\d* ok", uffdread) is not None
            and "second read -1 errno EIO" in uffdread,
            uffdread,
        )
        if checks.get("mmstall_ready") != "unsupported":
            self.section("mmstall", self.check_mmstall)
        self.section("cmdcache", self.check_cmdcache)
        self.section("numa", self.check_numa)
        self.section("wrap", self.check_wrap)
        self.section("memory", self.check_memory)
        leaks = {
            name: (int(a), int(b))
            for name, a, b in (
                ln.split() for ln in (self.results / "leaks.txt").read_text().splitlines()
            )
        }
        for name, limit in (
            ("task_struct", 100),
            ("mm_struct", 100),
            ("vmalloc_kib", 1024),
        ):
            a, b = leaks[name]
            self.check(f"no {name} leak over 200 reads", b - a < limit, (a, b))
        kmemleak = self.results / "kmemleak.txt"
        if kmemleak.exists():
            reports = kmemleak.read_text(errors="replace").split("unreferenced object")
            ours = [r for r in reports[1:] if "gestor_containers" in r]
            self.check(
                "kmemleak: nothing the module allocated is leaked over 200 reads",
                not ours,
                (len(ours), ours[:1]),
            )
        else:
            print("skip - kmemleak (not in this kernel)")

    def check_mmstall(self) -> None:
        """The reads during and after gvm mmstall held the victim's mmap_lock."""
        manifest = self.manifest()
        victim = manifest["mmvictim"]
        holder = manifest["holder"]
        locked = self.load("mmlocked.json")
        if locked:
            listed = {p["pid"]: p for p in locked["processes"]}
            entry = listed.get(victim)
            self.check(
                "mmap_lock held: the victim listed, its command line empty and flagged",
                entry is not None
                and entry["cmdline"] == ""
                and entry.get("cmdline_unavailable") is True,
                entry,
            )
            other = listed.get(holder)
            self.check(
                "mmap_lock held: the other processes' command lines are read",
                other is not None
                and other["cmdline"] == "gvm hold 64"
                and other.get("cmdline_unavailable") is False,
                other,
            )
        released = self.load("mmreleased.json")
        if released:
            entry = {p["pid"]: p for p in released["processes"]}.get(victim)
            self.check(
                "mmap_lock released: the victim's command line is back",
                entry is not None
                and entry["cmdline"] == "gvm mmstall /dev/nbd0 /tmp/released.mmstall"
                and entry.get("cmdline_unavailable") is False,
                entry,
            )

    def check_numa(self) -> None:
        """gvm numahint's argument page carried a NUMA hinting fault."""
        checks = parse_kv(self.results / "checks.txt")
        self.check("guest: two NUMA nodes", checks.get("numa_nodes") == "2", checks)
        self.check(
            "guest: NUMA balancing on",
            checks.get("numa_balancing") == "1",
            checks.get("numa_balancing"),
        )
        info = dict(kv.split("=") for kv in (self.results / "numa.txt").read_text().split())
        scans = int(info["scans"]) if info["scans"].lstrip("-").isdigit() else -1
        self.check("NUMA balancing scanned gvm numahint 4 times", scans >= 4, info)
        doc = self.load("numa.json")
        if not doc:
            return
        entry = {p["pid"]: p for p in doc["processes"]}.get(self.manifest()["numahint"])
        self.check(
            "a process whose argument page carries a NUMA hinting fault shows its"
            " command line, read from memory",
            entry is not None
            and entry["cmdline"] == "gvm numahint"
            and not entry["cmdline_unavailable"]
            and not entry["cmdline_cached"],
            entry,
        )
        kernel = (self.results / "kernel.txt").read_text().strip()
        major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", kernel).groups())
        faults = int(info["faults_after"]) - int(info["faults_before"])
        if (major, minor) < (6, 5):
            # get_user_pages_remote() honours NUMA hinting faults here: the
            # read took the fault (FOLL_NOFAULT would have failed it).
            self.check(f"{kernel}: the read took the NUMA hinting fault", faults >= 1, info)
        else:
            print(
                f"skip - {kernel}: get_user_pages_remote() reads a page that carries"
                f" a NUMA hinting fault without taking it ({faults} taken)"
            )

    def check_wrap(self) -> None:
        """test_wrap_in: the kept command lines' read counter wrapped at read 3."""
        checks = parse_kv(self.results / "checks.txt")
        for n in range(1, 6):
            self.check(
                f"read {n} around the counter's wrap ends",
                checks.get(f"wrap_read_{n}") == "done rc=0",
                checks.get(f"wrap_read_{n}"),
            )
        pid = self.manifest()["wrapper"]
        before, after = "gvm retitle /tmp/done.wrap", "gvm retitle /tmp/done.wrap again"
        docs = {n: self.load(f"wrap-{n}.json") for n in range(1, 6)}
        if not all(docs.values()):
            return
        got = [
            {p["pid"]: p for p in docs[n]["processes"]}.get(pid, {}).get("cmdline")
            for n in range(1, 6)
        ]
        want = [before, before, after, after, after]
        self.check(
            "around the wrap every read shows the current command line"
            " (an exec just before it included)",
            got == want,
            (got, want),
        )
        self.check(
            "the read at the wrap reads every command line afresh",
            not any(p["cmdline_cached"] for p in docs[3]["processes"]),
        )
        for n in (2, 5):
            self.check(
                f"read {n} (before and after the wrap) uses kept command lines",
                any(p["cmdline_cached"] for p in docs[n]["processes"]),
            )

    def check_memory(self) -> None:
        """gvm memprobe: what a read and 10,000 unread opens charge."""
        text = (self.results / "memprobe.txt").read_text()
        info = {k: int(v) for k, v in (kv.split("=") for kv in text.split())}
        self.check(
            "a read charges its document to the reader's memory cgroup",
            info["read_mid"] >= info["doc_bytes"],
            info,
        )
        extra = info["opens_file"] - info["opens_ref"]
        self.check(
            f"{info['opens']} opens without a read cost no more than one read"
            f" ({extra} bytes more than as many opens of /proc/version)",
            extra <= info["read_mid"],
            info,
        )
        self.check(
            "kept buffers shrink once the processes are gone",
            info["kept_after"] < info["kept_before"] - info["doc_bytes"] // 2,
            info,
        )

    def check_cmdcache(self) -> None:
        """Kept command lines: gvm retitle's texts read by read (cmdcache-N)."""
        manifest = self.manifest()

        def cmdlines(pid: int, reads) -> list:
            seen = []
            for n in reads:
                doc = self.load(f"cmdcache-{n}.json")
                entry = {p["pid"]: p for p in doc["processes"]}.get(pid)
                seen.append(
                    None if entry is None or entry["cmdline_unavailable"] else entry["cmdline"]
                )
            return seen

        pid = manifest["retitle"]
        refresh = manifest["refresh"]
        first, titled = "gvm retitle /tmp/done.retitle", "gvm titled1 /tmp/done.retitle"
        # Read 1 saw it first; its refresh is read 2 + pid % refresh (>= 4).
        due = 2 + pid % refresh
        want = [first] + [first if n < due else titled for n in range(2, 15)]
        got = cmdlines(pid, range(1, 15))
        self.check(
            f"kept command line: an in-place rewrite shows at the refresh (read {due})",
            due >= 4 and got == want,
            (got, want),
        )
        cached = []
        for n in range(1, 15):
            entry = {p["pid"]: p for p in self.load(f"cmdcache-{n}.json")["processes"]}
            cached.append(entry[pid]["cmdline_cached"] if pid in entry else None)
        # Read 1 read it, read `due` read it again; every other read used
        # the kept text (after the refresh the process did not run).
        want = [False] + [n != due for n in range(2, 15)]
        self.check(
            "cmdline_cached: true for the kept text, false for text read at the refresh",
            cached == want,
            (cached, want),
        )
        for n, text, what in (
            (
                15,
                "gvm titled2 /tmp/done.retitle",
                "a process seen rewriting is read every time",
            ),
            (16, "gvm moved", "arguments moved with PR_SET_MM show at once"),
            (
                17,
                "gvm retitle /tmp/done.retitle again",
                "a new image (exec) shows at once",
            ),
        ):
            got = cmdlines(pid, [n])[0]
            self.check(f"kept command line: {what}", got == text, (got, text))
        pid2 = manifest["retitle2"]
        got = cmdlines(pid2, [18, 19])
        want = ["gvm retitle /tmp/done.retitle2", "gvm titled1 /tmp/done.retitle2"]
        self.check(
            "cmdline_refresh=1: an in-place rewrite shows at the next read",
            got == want,
            (got, want),
        )
        # cmdline_refresh=2 from read 20 (which saw both first): gvm poke
        # wrote "poked01" over argv[1] of both after it (/proc/PID/mem),
        # while they slept.
        pid3, pid4 = manifest["retitle3"], manifest["retitle4"]
        old3, poked3 = (f"gvm {t} /tmp/done.retitle3" for t in ("retitle", "poked01"))
        got = cmdlines(pid3, range(20, 25))
        want = [old3] * 4 + [poked3]
        self.check(
            "a process that did not run is not read again, even past its"
            " refresh; once it ran (SIGALRM), the next read reads it",
            got == want,
            (got, want),
        )
        old4, poked4 = (f"gvm {t} /tmp/done.retitle4 share" for t in ("retitle", "poked01"))
        got = cmdlines(pid4, range(20, 24))
        # Its refresh is read 21 + pid % 2; from there on, the poked text.
        due = 21 + pid4 % 2
        want = [old4 if n < due else poked4 for n in range(20, 24)]
        self.check(
            "a process whose memory another process shares (CLONE_VM) is"
            f" read again at its refresh (read {due}) though it did not run",
            got == want,
            (got, want),
        )

    def check_stress(self) -> None:
        stress = self.results / "stress"
        readers = sorted(stress.glob("reader-*.txt"))
        self.check("8 readers reported", len(readers) == 8, len(readers))
        execseen = 0
        for path in readers:
            kv = dict(item.split("=") for item in path.read_text().split())
            execseen += int(kv["execseen"])
            self.check(
                f"stress {path.stem}: 5+ reads, all valid JSON, stopped by rmmod",
                int(kv["invalid"]) == 0 and int(kv["reads"]) >= 5 and kv["stop"] == "gone",
                kv,
            )
            bad = stress / f"bad-entry-{path.stem.split('-')[1]}.txt"
            example = bad.read_text()[:300] if bad.exists() else ""
            self.check(
                f"stress {path.stem}: no reaped task listed (state X, ppid 0)",
                int(kv["reaped"]) == 0,
                (kv["reaped"], example),
            )
            self.check(
                f"stress {path.stem}: exec'ing processes' command lines are whole",
                int(kv["badexec"]) == 0,
                (kv["badexec"], example),
            )
        self.check("stress: the exec'ing processes were seen", execseen > 0, execseen)
        self.check("stress: no invalid document kept", not list(stress.glob("invalid-*")))
        samples = sorted(stress.glob("sample-*.json"))
        self.check("stress: samples kept", bool(samples))
        for path in samples:
            doc = self.load(f"stress/{path.name}")
            if doc:
                self.check(
                    f"stress {path.stem} lists the 2,000 extra processes",
                    len(doc["processes"]) >= 2000,
                    len(doc["processes"]),
                )
        for name in ("churn.txt", "churn-outside.txt", "tchurn.txt"):
            text = (stress / name).read_text()
            self.check(
                f"stress {name}: churned",
                re.search(r": [1-9]\d* ", text) is not None,
                text,
            )

    def check_dmesg(self) -> None:
        lines = (self.results / "dmesg.txt").read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if BAD_DMESG.search(ln)]
        self.check("dmesg: no BUG, WARNING, Oops or RCU stall", not bad, bad[:5])
        self.check(
            "dmesg: proc_name=meminfo refused because /proc has it",
            any("gestor_containers: /proc/meminfo exists already" in ln for ln in lines),
        )
        self.check(
            "dmesg: the module loaded",
            any("gestor_containers: created /proc/sysinfo_202200075" in ln for ln in lines),
        )

    def check_daemon_parser(self) -> None:
        for name in ("default.json", "all.json", "stress/sample-0.json"):
            path = self.results / name
            run = subprocess.run(
                [self.gestor, "snapshot", "--sysinfo", str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            self.check(
                f"gestor snapshot parses {name}",
                run.returncode == 0,
                (run.returncode, run.stderr[-300:]),
            )
        broken = self.results / "truncated.json"
        data = (self.results / "default.json").read_bytes()
        broken.write_bytes(data[: len(data) // 2])
        run = subprocess.run(
            [self.gestor, "snapshot", "--sysinfo", str(broken)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.check(
            "gestor snapshot rejects a truncated document, naming the file",
            run.returncode != 0 and "truncated.json" in run.stderr + run.stdout,
            (run.returncode, run.stderr[-300:]),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="the guest's /out")
    parser.add_argument("--schema", type=Path, required=True)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to the guest")
    parser.add_argument("--gestor", help="gestor binary, to run `gestor snapshot` on the output")
    args = parser.parse_args()

    checker = Checker(args.results, args.schema, args.cpus, args.gestor)
    try:
        checker.run()
    except (OSError, KeyError, ValueError) as exc:
        checker.check("guest results complete", False, repr(exc))
    print(f"checks: {checker.passed} passed, {checker.failed} failed")
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
