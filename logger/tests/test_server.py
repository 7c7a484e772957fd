"""Against a real uvicorn process: durability across SIGKILL, the live stream, limits."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.factory import record
from tests.server import Server

pytestmark = pytest.mark.slow


class Streamer:
    """Client threads posting batches of 100 records as fast as the server takes them."""

    def __init__(self, url: str, clients: int = 2, batch: int = 100) -> None:
        self.url = url
        self.batch = batch
        self.lock = threading.Lock()
        self.acked: list[str] = []
        self.batches: list[list[dict]] = []  # every batch that was sent (or tried)
        self.failures = 0
        self.errors: list[str] = []  # anything but a dropped connection
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)
        ]

    def _run(self, n: int) -> None:
        try:
            self._post_until_stopped(n)
        except Exception as exc:  # reported by the test, not lost in a thread
            with self.lock:
                self.errors.append(repr(exc))

    def _post_until_stopped(self, n: int) -> None:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.url, timeout=10) as client:
            seq = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                batch = [
                    record(id=f"c{n}-{seq}-{i}-{random.getrandbits(32):08x}")
                    for i in range(self.batch)
                ]
                seq += 1
                with self.lock:
                    self.batches.append(batch)
                try:
                    r = client.post("/logs", json=batch)
                except httpx.TransportError:
                    with self.lock:
                        self.failures += 1
                    return
                if r.status_code != 200:
                    raise AssertionError(f"unexpected {r.status_code}: {r.text}")
                with self.lock:
                    self.acked += [rec["id"] for rec in batch]

    def start(self) -> Streamer:
        for t in self.threads:
            t.start()
        return self

    def wait_acked(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.acked) >= count:
                    return
            time.sleep(0.01)
        raise AssertionError(f"only {len(self.acked)} records acknowledged in {timeout} s")

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a client is still posting"
        assert not self.errors, self.errors


def stored_ids(url: str) -> list[str]:
    r = httpx.get(url + "/logs/export", timeout=60)
    assert r.status_code == 200
    return [json.loads(line)["id"] for line in r.text.splitlines()]


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sigkill_mid_stream_loses_no_acknowledged_record(tmp_path: Path, synchronous: str):
    data = tmp_path / "data"
    all_batches: list[list[dict]] = []
    acked: set[str] = set()
    for round_ in range(2):
        server = Server(data, LOGGER_SYNCHRONOUS=synchronous).start()
        streamer = Streamer(server.url).start()
        streamer.wait_acked(2000 + 1000 * round_)
        time.sleep(random.uniform(0, 0.05))
        server.kill()  # SIGKILL while both clients are posting
        streamer.join()
        assert streamer.failures >= 1, "the kill did not interrupt the stream"
        all_batches += streamer.batches
        acked |= set(streamer.acked)

    server = Server(data, LOGGER_SYNCHRONOUS=synchronous).start()
    try:
        ids = stored_ids(server.url)
        counts = Counter(ids)
        assert max(counts.values()) == 1, "a record is stored twice"
        missing = acked - counts.keys()
        assert not missing, f"{len(missing)} acknowledged records lost"
        # Batches are atomic: an unacknowledged batch is stored whole or not at all.
        for batch in all_batches:
            present = sum(rec["id"] in counts for rec in batch)
            assert present in (0, len(batch))
        # The sender retries everything it is unsure of: nothing is stored twice.
        retried = 0
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for batch in all_batches:
                r = client.post("/logs", json=batch)
                assert r.status_code == 200
                retried += r.json()["stored"]
        ids_after = stored_ids(server.url)
        assert len(ids_after) == len(set(ids_after)) == sum(len(b) for b in all_batches)
        assert len(ids_after) == len(ids) + retried
        assert httpx.get(server.url + "/healthz").json()["records"] == len(ids_after)
    finally:
        server.stop()


def read_event(lines, name: str, timeout: float) -> dict:
    """The data of the next SSE message called ``name``."""
    deadline = time.monotonic() + timeout
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == name:
            return json.loads(line[6:])
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {name!r} event within {timeout} s")


def test_live_stream_pushes_a_posted_record_within_two_seconds(tmp_path: Path):
    with Server(tmp_path / "data") as server:
        timeout = httpx.Timeout(10, read=5)
        with httpx.stream("GET", server.url + "/events", timeout=timeout) as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            hello = read_event(lines, "hello", 5)
            assert hello["counters"]["total"] == 0
            rec = record(event="kill", container_type="ram")
            started = time.monotonic()
            assert httpx.post(server.url + "/logs", json=rec).status_code == 200
            pushed = read_event(lines, "records", 2)
            assert time.monotonic() - started < 2
            assert [r["id"] for r in pushed["records"]] == [rec["id"]]
            assert pushed["counters"]["by_event"] == {"kill": 1}
            assert pushed["counters"]["kills_by_type"] == {"ram": 1}
            # A duplicate is not pushed again; the next new record is.
            httpx.post(server.url + "/logs", json=[rec, second := record()])
            pushed = read_event(lines, "records", 2)
            assert [r["id"] for r in pushed["records"]] == [second["id"]]


def test_shutdown_is_prompt_with_a_live_client_connected(tmp_path: Path):
    server = Server(tmp_path / "data").start()
    try:
        with httpx.stream("GET", server.url + "/events", timeout=10) as events:
            lines = events.iter_lines()
            read_event(lines, "hello", 5)
            started = time.monotonic()
            server.proc.terminate()
            server.proc.wait(timeout=15)
            elapsed = time.monotonic() - started
            # The stream was ended by the server, not cut: the client reads its end.
            assert list(lines) is not None
    finally:
        server.stop()
        server.close()
    # Open streams end at once on SIGTERM (sse-starlette), well before uvicorn's
    # --timeout-graceful-shutdown (3 s here, 5 s in the image).
    assert elapsed < 1.0, elapsed
    assert server.proc.returncode in (0, -15)


def test_a_second_process_on_the_same_data_directory_refuses_to_start(tmp_path: Path):
    data = tmp_path / "data"
    with Server(data) as first:
        second = Server(data)
        try:
            with pytest.raises(RuntimeError, match="exited with 3"):
                second.start(timeout=30)
            assert "exactly one" in second.tail(200_000)
        finally:
            second.stop()
            second.close()
        assert httpx.post(first.url + "/logs", json=record()).status_code == 200


def test_more_than_one_uvicorn_worker_is_refused(tmp_path: Path):
    """With --workers 2 one worker cannot take the data directory's lock, fails
    its start-up, and uvicorn's supervisor then stops the whole server."""
    server = Server(tmp_path / "data")
    try:
        with contextlib.suppress(RuntimeError):  # it may answer once before it stops
            server.start(timeout=60, extra=["--workers", "2"])
        assert server.proc is not None
        server.proc.wait(timeout=60)
        assert "exactly one" in server.tail(200_000)
    finally:
        server.stop()
        server.close()


def test_chunked_body_over_the_limit_is_a_413_on_a_real_server(tmp_path: Path):
    def chunks():
        yield b"["
        for i in range(40):
            yield (b"," if i else b"") + json.dumps(record()).encode()
        yield b"]"

    with Server(tmp_path / "data", LOGGER_MAX_BODY_BYTES="4096") as server:
        json_type = {"content-type": "application/json"}
        r = httpx.post(server.url + "/logs", content=chunks(), headers=json_type)
        assert r.status_code == 413
        big = json.dumps([record() for _ in range(40)]).encode()
        assert httpx.post(server.url + "/logs", content=big, headers=json_type).status_code == 413
        assert httpx.post(server.url + "/logs", json=[record()]).status_code == 200
        assert httpx.get(server.url + "/healthz").json()["records"] == 1


def test_token_on_a_real_server(tmp_path: Path):
    with Server(tmp_path / "data", LOGGER_TOKEN="tok-123") as server:
        assert httpx.post(server.url + "/logs", json=record()).status_code == 401
        ok = httpx.post(
            server.url + "/logs", json=record(), headers={"Authorization": "Bearer tok-123"}
        )
        assert ok.status_code == 200
