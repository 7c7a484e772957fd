"""Real parts for the end-to-end tests: the gestor binary, its log container,
Debian's Prometheus and the generator script, each scoped to one test."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GESTOR = REPO / "target" / "release" / "gestor"
GENERATOR = REPO / "cron" / "create_containers.sh"
DOCKER = "/usr/bin/docker"
STRESS_IMAGE = os.environ.get("GESTOR_STRESS_IMAGE", "gestor/stress:latest")
LOGGER_IMAGE = os.environ.get("GESTOR_LOGGER_IMAGE", "gestor/logger:latest")
TYPES = ("cpu", "ram", "io", "disk")


def docker(*args: str, check: bool = True) -> str:
    out = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def http_get(url: str, timeout: float = 5.0) -> bytes:
    if not url.startswith("http://"):
        raise ValueError(f"not an http:// URL: {url}")
    # The scheme is checked above: only the services this suite started.
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
        return resp.read()


def wait_until(what: str, timeout: float, check, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # any failure is retried until the deadline
            last_error = e
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what} (last error: {last_error})"
    )


class Scope:
    """Containers of one test: a unique `gestor.scope` label; removed at the end."""

    def __init__(self, name: str):
        self.value = f"e2e-{name}-{uuid.uuid4().hex[:8]}"
        self.label = f"gestor.scope={self.value}"

    def containers(self, all_states: bool = False) -> list[dict]:
        args = ["ps", "--filter", f"label={self.label}", "--format", "{{json .}}"]
        if all_states:
            args.append("-a")
        out = docker(*args)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def running_by_type(self) -> dict[str, list[str]]:
        by_type: dict[str, list[str]] = {t: [] for t in TYPES}
        for c in self.containers():
            labels = dict(kv.split("=", 1) for kv in c["Labels"].split(",") if "=" in kv)
            if labels.get("gestor.managed") == "true":
                by_type.setdefault(labels.get("gestor.type", "unknown"), []).append(c["Names"])
        return by_type

    def start(self, kind: str, command: str, *options: str) -> str:
        """Starts one managed stress container of `kind` (extra `docker run`
        options after the command); returns its name."""
        name = f"{kind}-{uuid.uuid4().hex[:12]}"
        docker(
            "run",
            "-d",
            "--cpus",
            "0.1",
            *options,
            "--name",
            name,
            "--label",
            self.label,
            "--label",
            "gestor.managed=true",
            "--label",
            f"gestor.type={kind}",
            STRESS_IMAGE,
            *command.split(),
        )
        return name

    def generate(self, count: int = 10, workdir: Path | None = None) -> list[str]:
        """Runs the real generator script once; returns the names it reports
        it created (a listing would race with gestor's kills)."""
        workdir = workdir or Path(tempfile.mkdtemp(prefix="gestor-gen-"))
        out = subprocess.run(
            [
                str(GENERATOR),
                "-n",
                str(count),
                "--image",
                STRESS_IMAGE,
                "--label",
                self.label,
                "--log-file",
                str(workdir / "generator.log"),
                "--lock-file",
                str(workdir / "generator.lock"),
                "--print-names",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert out.returncode == 0, f"generator failed: {out.stdout}\n{out.stderr}"
        return sorted(out.stdout.split())

    def cleanup(self) -> None:
        ids = docker("ps", "-aq", "--filter", f"label={self.label}", check=False).split()
        if ids:
            docker("rm", "-f", *ids, check=False)


class Gestor:
    """The real daemon, run as a user would (release build). It listens on a
    port the kernel picks and writes it to its ready file; the log service
    container it creates is published on a port Docker picks (read back with
    `docker port`, again after each restart of the container)."""

    def __init__(self, scope: Scope, workdir: Path, *extra: str):
        self.port = 0
        self.workdir = workdir
        run = uuid.uuid4().hex[:8]
        self.stderr_path = workdir / f"gestor-{run}.stderr"
        self.ready_path = workdir / f"gestor-{run}.ready"
        self.logger_name = f"gestor-logger-{scope.value}"
        self.logger_volume = f"gestor-logs-{scope.value}"
        defaults = {
            "--listen": "127.0.0.1:0",
            "--ready-file": str(self.ready_path),
            "--only-label": scope.label,
            "--source": "userspace",
            "--logger-url": "http://127.0.0.1:0",
            "--logger-container": self.logger_name,
            "--logger-volume": self.logger_volume,
            "--logger-image": LOGGER_IMAGE,
            "--spool-dir": str(workdir / "spool"),
        }
        # A flag in `extra` replaces the default (clap refuses a flag twice).
        given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
        self.args = [str(GESTOR), "run"]
        for flag, value in defaults.items():
            if flag not in given:
                self.args += [flag, value]
        self.args += list(extra)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Gestor:
        self._stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self._stderr)
        self.port = wait_until("gestor's ready file", 30, self._bound_port, 0.05)
        wait_until("gestor /healthz", 30, lambda: http_get(self.url("/healthz")))
        return self

    def _bound_port(self) -> int | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"gestor exited with {self.proc.returncode}: {self.stderr_path.read_text()}"
            )
        try:
            return int(self.ready_path.read_text().strip().rsplit(":", 1)[1])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def logger_port(self) -> int:
        """Where the log service container is published now."""
        mapping = docker("port", self.logger_name, "8000/tcp").splitlines()[0]
        return int(mapping.rsplit(":", 1)[1])

    def logger_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.logger_port}{path}"

    def state(self) -> dict:
        return json.loads(http_get(self.url("/api/v1/state")))

    def metrics(self) -> str:
        return http_get(self.url("/metrics")).decode()

    def metric(self, prefix: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no metric {prefix}")

    def cycle(self) -> int:
        try:
            return int(self.state()["cycle"])
        except Exception:  # no cycle yet (no state, or no cycle in it)
            return 0

    def wait_cycles(self, n: int, timeout: float) -> None:
        start = self.cycle()
        wait_until(f"{n} more cycles", timeout, lambda: self.cycle() >= start + n, 0.2)

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return lines

    def events(self, event: str) -> list[dict]:
        return [line for line in self.log_lines() if line.get("event") == event]

    def run_id(self) -> str:
        """This run's id, as gestor logged it at start-up."""
        for line in self.log_lines():
            if line.get("message") == "gestor started":
                return line["run_id"]
        raise AssertionError("no start-up line")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode

    def remove_logger(self) -> None:
        docker("rm", "-f", self.logger_name, check=False)
        docker("volume", "rm", "-f", self.logger_volume, check=False)

    def logger_records(self) -> list[dict]:
        body = http_get(self.logger_url("/logs/export"), timeout=30).decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]


class Prometheus:
    """Debian's Prometheus on a loopback port it picks (port 0, read back
    from its log), scraping one target."""

    def __init__(self, target_port: int, workdir: Path, interval: str = "2s"):
        self.port = 0
        self.dir = workdir / "prometheus"
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            "scrape_configs:\n"
            "  - job_name: gestor\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                "--web.listen-address=127.0.0.1:0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr", "wb"),  # noqa: SIM115 - lives with the process
        )
        try:
            self.port = wait_until("prometheus listening", 60, self._bound_port, 0.1)
            wait_until(
                "prometheus ready", 60, lambda: http_get(f"http://127.0.0.1:{self.port}/-/ready")
            )
        except BaseException:
            self.stop()
            raise

    def _bound_port(self) -> int | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {(self.dir / 'stderr').read_text()[-2000:]}")
        # Whole lines only: the log is read while Prometheus writes it.
        found = re.search(
            r'msg="Listening on" address=\S*:(\d+)\n', (self.dir / "stderr").read_text()
        )
        return int(found.group(1)) if found else None

    def query(self, promql: str) -> list[dict]:
        q = urllib.parse.urlencode({"query": promql})
        body = json.loads(http_get(f"http://127.0.0.1:{self.port}/api/v1/query?{q}"))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
