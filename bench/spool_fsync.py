#!/usr/bin/env python3
"""One run of bench/spool_fsync.sh, and its summary.

  spool_fsync.py run GESTOR SPOOL_DIR OUT REQUESTS PACE_MS [GESTOR_ARG...]
    Starts a log receiver on loopback (port 0, answers 200 to POST /logs),
    then `GESTOR run` listening on port 0 and shipping to it with its spool
    in SPOOL_DIR; once gestor has shipped its first records, sends REQUESTS
    GET /metrics on a fixed schedule, one every PACE_MS, each on a new
    connection (HTTP/1.0). Two times per request: the service time (connect
    to the last byte of the answer) and the response time from the moment
    the request was due, as a scraper on that schedule sees it: a server
    that stalls for 4 s delays one request by 4 s in the first, and the 160
    due during the stall in the second (no coordinated omission). Meanwhile
    it times an fsync probe (write 600 bytes, fsync, fsync the directory)
    beside the spool every 100 ms: how slow the disk makes fsync. Writes
    both times (ms, "service response" a line) to OUT and prints a JSON
    summary.

    With SPOOL_DIR "-", gestor ships nothing and has no spool (the control:
    what the runtime gives on this machine under this load, spool or not).

  spool_fsync.py summary BEFORE_OUT AFTER_OUT [CONTROL_OUT]
    Prints p50/p99/max of each and the before/after ratios.

The times are the server's: a persistent process sends the requests, so no
client start-up is counted. Only loopback is contacted; loops are bounded.
"""

from __future__ import annotations

import collections
import contextlib
import http.server
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of an unsorted list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True
    records = 0


class LogsHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.records += len(json.loads(body))
        # gestor may have given up waiting (its 5 s timeout) under load.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def get(port: int, path: str, timeout: float = 30.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        raise RuntimeError(f"{path}: {answer[:80]!r}")
    return answer


def metric(port: int, name: str) -> float:
    """The sum of the series of family `name`."""
    lines = get(port, "/metrics").decode().splitlines()
    values = [float(line.split()[-1]) for line in lines if line.split("{")[0].split(" ")[0] == name]
    if not values:
        raise RuntimeError(f"no {name} in /metrics")
    return sum(values)


def fsync_probe(directory: str, stop: threading.Event, out: list[float]) -> None:
    path = os.path.join(directory, "probe")
    while not stop.wait(0.1):
        started = time.perf_counter()
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.write(fd, b"x" * 600)
        os.fsync(fd)
        os.close(fd)
        dfd = os.open(directory, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        out.append((time.perf_counter() - started) * 1000)
    os.unlink(path)


def major_faults(pid: int) -> int:
    """Page faults of a process that had to read from disk, so far."""
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the name (which may hold spaces): majflt is the 12th.
        return int(f.read().rsplit(")", 1)[1].split()[9])


def wait_until(what: str, seconds: float, ok) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def scrape(port: int, requests: int, pace_ms: float) -> tuple[list[float], list[float]]:
    """GET /metrics on a fixed schedule: service and response times (ms)."""
    service: list[float] = []
    response: list[float] = []
    started = time.perf_counter()
    for i in range(requests):
        due = started + i * pace_ms / 1000
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent = time.perf_counter()
        get(port, "/metrics")
        done = time.perf_counter()
        service.append((done - sent) * 1000)
        response.append((done - due) * 1000)
    return service, response


def run(gestor: str, spool: str, out: str, requests: int, pace_ms: float, extra: list[str]) -> None:
    receiver = Receiver(("127.0.0.1", 0), LogsHandler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="spool-fsync-")
    ready = os.path.join(work, "ready")
    # gestor's log into a pipe, as under Docker: a log file on the stressed
    # disk would stall gestor's logging threads, whatever the spool does.
    shipping = (
        ["--logger-url", ""]
        if spool == "-"
        else ["--logger-url", f"http://127.0.0.1:{receiver.server_port}", "--spool-dir", spool]
    )
    proc = subprocess.Popen(
        [
            gestor,
            "run",
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            ready,
            "--create-logger=false",
            *shipping,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    log: collections.deque[bytes] = collections.deque(maxlen=50)
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    probe: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=fsync_probe, args=(os.path.dirname(out), stop, probe))
    try:
        wait_until("gestor's ready file", 60, lambda: os.path.exists(ready))
        with open(ready) as f:
            port = int(f.read().strip().rsplit(":", 1)[1])
        if spool == "-":
            wait_until("a cycle", 120, lambda: metric(port, "gestor_cycles_total") > 0)
        else:
            wait_until(
                "records shipped", 120, lambda: metric(port, "gestor_log_records_sent_total") > 0
            )
        cycles0 = metric(port, "gestor_cycles_total")
        faults0 = major_faults(proc.pid)
        prober.start()
        started = time.perf_counter()
        service, response = scrape(port, requests, pace_ms)
        elapsed = time.perf_counter() - started
        cycles = metric(port, "gestor_cycles_total") - cycles0
        faults = major_faults(proc.pid) - faults0
        shipped = metric(port, "gestor_log_records_sent_total")
    except Exception:
        sys.stderr.write(b"".join(log).decode(errors="replace"))
        raise
    finally:
        stop.set()
        if prober.is_alive():
            prober.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    with open(out, "w") as f:
        f.writelines(f"{a:.3f} {b:.3f}\n" for a, b in zip(service, response, strict=True))
    print(
        json.dumps(
            {
                "gestor": os.path.basename(gestor),
                "requests": len(service),
                "seconds": round(elapsed, 1),
                "cycles": int(cycles),
                "records_sent": int(shipped),
                "records_received": receiver.records,
                "major_faults": faults,
                "service_p99_ms": round(percentile(service, 99), 2),
                "service_max_ms": round(max(service), 2),
                "response_p99_ms": round(percentile(response, 99), 2),
                "response_max_ms": round(max(response), 2),
                "fsync_probes": len(probe),
                "fsync_p50_ms": round(percentile(probe, 50), 1) if probe else None,
                "fsync_p99_ms": round(percentile(probe, 99), 1) if probe else None,
                "fsync_max_ms": round(max(probe), 1) if probe else None,
            }
        )
    )


def summary(before_file: str, after_file: str, control_file: str | None) -> None:
    def load(path: str, column: int) -> list[float]:
        with open(path) as f:
            return [float(line.split()[column]) for line in f if line.strip()]

    for column, what in enumerate(("service time", "response time from the scheduled send")):
        before, after = load(before_file, column), load(after_file, column)
        rows = [("before", before), ("after", after)]
        if control_file:
            rows.append(("no spool", load(control_file, column)))
        print(f"/metrics {what}:")
        print(
            f"  {'':8} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'>50 ms':>7} {'>100 ms':>7}"
        )
        for name, v in rows:
            over = [sum(t > limit for t in v) for limit in (50, 100)]
            print(
                f"  {name:8} {len(v):8d} {percentile(v, 50):8.2f} {percentile(v, 99):8.2f} "
                f"{max(v):8.2f} {over[0]:7d} {over[1]:7d}"
            )
        ratios = [percentile(before, p) / max(percentile(after, p), 1e-9) for p in (50, 99)]
        ratios.append(max(before) / max(*after, 1e-9))
        print(f"  before/after: p50 {ratios[0]:.1f}x, p99 {ratios[1]:.1f}x, max {ratios[2]:.1f}x")
        verdict = "met" if percentile(after, 99) <= 50 else "NOT met"
        print(f"  goal p99 <= 50 ms after: {verdict}")


def main() -> None:
    if len(sys.argv) >= 7 and sys.argv[1] == "run":
        gestor, spool, out, requests, pace = sys.argv[2:7]
        run(gestor, spool, out, int(requests), float(pace), sys.argv[7:])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "summary":
        summary(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) == 5 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
