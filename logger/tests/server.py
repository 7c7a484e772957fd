"""A real uvicorn process running the logger on a loopback port.

The test binds and listens on port 0 itself and hands the listening socket to
the server by descriptor: the port is known before the server starts and
cannot be taken by anyone in between, and a restart of the same ``Server``
serves on the same port (connections queue in the backlog meanwhile). The
server is ``tests/serve.py``, which gives the descriptor to uvicorn as the TCP
socket it is (``uvicorn --fd`` takes it for a Unix socket and leaves Nagle on:
~40 ms per response); ``start(extra=[...])`` runs uvicorn's own command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

LOGGER_DIR = Path(__file__).resolve().parent.parent


class Server:
    """The app under uvicorn as a child process (``python -m tests.serve``)."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"uvicorn-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, extra: list[str] | None = None) -> Server:
        env = {**os.environ, "LOGGER_DATA_DIR": str(self.data_dir), **self.env}
        fd = ["--fd", str(self.sock.fileno()), "--log-level", "warning"]
        fd += ["--timeout-graceful-shutdown", "3"]
        if extra:  # uvicorn's own command line (e.g. --workers, which tests.serve lacks)
            cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", *fd, *extra]
        else:  # keeps TCP_NODELAY on the connections (see tests/serve.py)
            cmd = [sys.executable, "-m", "tests.serve", *fd]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=LOGGER_DIR,
                env=env,
                stdout=log,
                stderr=log,
                pass_fds=(self.sock.fileno(),),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"uvicorn did not answer within {timeout} s: {self.tail()}")

    def tail(self, size: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.close()

    def close(self) -> None:
        """Releases the port (after the last stop)."""
        self.sock.close()
