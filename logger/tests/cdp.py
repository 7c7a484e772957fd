"""A headless Chromium (Debian's) driven over the DevTools protocol, no Playwright."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,1400",
]

MAX_AUTH_PROMPTS = 2


class Browser:
    """One Chromium process and a session on its first page."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="logger-chromium-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws = None
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()

    def start(self, timeout: float = 30) -> Browser:
        log = (self.profile / "chromium.log").open("wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {self.log_tail()}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        while True:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("chromium has no page target")
            time.sleep(0.05)
        self.ws = self._stack.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024)
        )
        self.call("Page.enable")
        self.call("Runtime.enable")
        return self

    def log_tail(self) -> str:
        try:
            return (self.profile / "chromium.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Sends one command and returns its result; events seen meanwhile are kept."""
        assert self.ws is not None
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("id") == msg_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, interval: float = 0.02) -> float:
        """Polls until ``expression`` is truthy; returns the seconds it took."""
        started = time.monotonic()
        last_error = None
        while True:
            try:
                if self.evaluate(expression):
                    return time.monotonic() - started
            except RuntimeError as exc:  # e.g. the page is still loading
                last_error = exc
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{expression!r} still false after {timeout} s ({last_error})")
            time.sleep(interval)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def navigate_with_login(
        self, url: str, username: str, password: str, timeout: float = 30
    ) -> int:
        """Opens ``url`` answering the browser's HTTP auth prompt with these
        credentials, as a user would type them; returns how many prompts were
        answered. The browser keeps them for the origin, so the page's own
        requests (fetches, images, EventSource) send them from then on."""
        self.call("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])
        done = 0
        answered = 0
        # Not `call`: the navigation's answer waits for the paused request.
        assert self.ws is not None
        self.ws.send(
            json.dumps({"id": next(self.ids), "method": "Page.navigate", "params": {"url": url}})
        )
        deadline = time.monotonic() + timeout
        loaded = False
        while not loaded:
            while done < len(self.events):
                event = self.events[done]
                done += 1
                method, params = event.get("method"), event.get("params", {})
                if method == "Fetch.requestPaused":
                    self.call("Fetch.continueRequest", requestId=params["requestId"])
                elif method == "Fetch.authRequired":
                    # Asked again: the credentials were refused; give up as a
                    # user would (Cancel), and the browser shows the 401.
                    answer = {"response": "CancelAuth"}
                    if answered < MAX_AUTH_PROMPTS:
                        answer = {
                            "response": "ProvideCredentials",
                            "username": username,
                            "password": password,
                        }
                    answered += 1
                    self.call(
                        "Fetch.continueWithAuth",
                        requestId=params["requestId"],
                        authChallengeResponse=answer,
                    )
                elif method == "Page.loadEventFired":
                    loaded = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{url} did not load within {timeout} s")
            if not loaded:
                assert self.ws is not None
                self.events.append(json.loads(self.ws.recv(timeout=remaining)))
        self.call("Fetch.disable")
        return answered

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def exceptions(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # the browser may already be gone
                self.call("Browser.close", timeout=5)
            self._stack.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
