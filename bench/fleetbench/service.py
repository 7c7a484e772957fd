"""The log service as a real uvicorn, serving on a Unix socket in a scratch
directory (uvicorn binds it itself: no port to pick), with N workers, on the
engine ``LOGGER_DATABASE_URL`` names. The same transport for every engine,
so their figures compare."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent.parent
LOGGER_DIR = REPO / "logger"


class Service:
    def __init__(
        self, workdir: Path, workers: int, database_url: str | None, logger_dir: Path = LOGGER_DIR
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.logger_dir = logger_dir
        self.workdir = workdir
        self.socket = workdir / "logger.sock"
        self.data_dir = workdir / "data"
        self.log = workdir / "uvicorn.log"
        self.workers = workers
        self.env = {"LOGGER_DATA_DIR": str(workdir / "data"), "LOGGER_WORKERS": str(workers)}
        if database_url:
            self.env["LOGGER_DATABASE_URL"] = database_url
        (workdir / "data").mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def client(self, timeout: float = 60) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        return httpx.Client(transport=transport, base_url="http://logger", timeout=timeout)

    def migrate(self) -> float | None:
        """``python -m app.migrate`` as the image's CMD runs it before the
        workers start (when the service has that step); returns its seconds."""
        if not (self.logger_dir / "app" / "migrate.py").exists():
            return None
        started = time.monotonic()
        with self.log.open("ab") as log:
            subprocess.run([sys.executable, "-m", "app.migrate"], cwd=self.logger_dir,
                           env={**os.environ, **self.env}, stdout=log, stderr=log, check=True,
                           timeout=600)  # fmt: skip
        return time.monotonic() - started

    def start(self, timeout: float = 120) -> Service:
        self.migrate()
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
               "--uds", str(self.socket), "--workers", str(self.workers),
               "--log-level", "warning", "--timeout-graceful-shutdown", "3"]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.logger_dir, env={**os.environ, **self.env}, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        with self.client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise RuntimeError(f"the log service exited {code}: {self.tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)  # polling for the socket to answer
        self.stop()
        raise RuntimeError(f"the log service did not answer within {timeout} s: {self.tail()}")

    def tail(self, size: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
