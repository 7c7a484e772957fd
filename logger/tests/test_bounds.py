"""Bounded for any reader (issue 25): live streams per client and in total, a
reader that stops reading dropped, repeated filters de-duplicated and
bounded, deep `offset` paging refused for the cursor, requests in flight
capped. The streams and the cap are checked on real uvicorn servers."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.routers.logs import MAX_FILTER_VALUES, MAX_OFFSET, filters
from tests.factory import record
from tests.server import Server


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still not so after {timeout} s")
        time.sleep(0.05)


def live_clients(url: str) -> float:
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            if sample.name == "gestor_logger_live_clients":
                return sample.value
    raise AssertionError("no gestor_logger_live_clients")


@contextlib.contextmanager
def open_streams(url: str, n: int) -> Iterator[list[httpx.Response]]:
    with contextlib.ExitStack() as stack:
        streams = []
        for _ in range(n):
            response = stack.enter_context(httpx.stream("GET", url + "/events", timeout=10))
            assert response.status_code == 200
            streams.append(response)
        yield streams


@pytest.mark.slow
def test_streams_of_one_client_beyond_its_share_get_429(tmp_path: Path):
    env = {"LOGGER_SSE_MAX_STREAMS_PER_CLIENT": "2", "LOGGER_SSE_MAX_STREAMS": "10"}
    with Server(tmp_path / "data", **env) as server:
        with open_streams(server.url, 2):
            refused = httpx.get(server.url + "/events", timeout=5)
            assert refused.status_code == 429
            assert "LOGGER_SSE_MAX_STREAMS_PER_CLIENT" in refused.json()["detail"]
            assert refused.headers["retry-after"]
        # Closed streams give their places back.
        wait_until("the streams closed", lambda: live_clients(server.url) == 0)
        with open_streams(server.url, 2):
            pass


@pytest.mark.slow
def test_streams_beyond_the_total_get_503(tmp_path: Path):
    env = {"LOGGER_SSE_MAX_STREAMS_PER_CLIENT": "10", "LOGGER_SSE_MAX_STREAMS": "3"}
    with Server(tmp_path / "data", **env) as server, open_streams(server.url, 3):
        refused = httpx.get(server.url + "/events", timeout=5)
        assert refused.status_code == 503
        assert "LOGGER_SSE_MAX_STREAMS" in refused.json()["detail"]
        assert refused.headers["retry-after"]


@pytest.mark.slow
def test_a_reader_that_stops_reading_is_dropped_not_buffered(tmp_path: Path):
    """A client opens the stream and never reads: once the socket buffers are
    full, a send waits LOGGER_SSE_SEND_TIMEOUT_SECONDS and the server drops
    the stream (its place is free again), while the client still holds the
    connection open."""
    with Server(tmp_path / "data", LOGGER_SSE_SEND_TIMEOUT_SECONDS="1") as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        try:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
            wait_until("the stream open", lambda: live_clients(server.url) == 1)
            padding = "x" * 2000
            batches = 0
            deadline = time.monotonic() + 60
            while live_clients(server.url) == 1:
                assert time.monotonic() < deadline, f"still streaming after {batches} batches"
                batch = [record(reason=padding) for _ in range(100)]
                assert httpx.post(server.url + "/logs", json=batch, timeout=30).is_success
                batches += 1
            print(f"dropped after {batches} batches of 100 records")
            # The server is fine and the next reader is served.
            with open_streams(server.url, 1):
                assert live_clients(server.url) == 1
        finally:
            sock.close()


def test_repeated_filter_values_count_once():
    where = filters(type=["cpu", "ram", "cpu", "cpu"], event=["kill", "kill"])
    assert where.types == ("cpu", "ram")
    assert where.events == ("kill",)


def test_repeated_filters_give_the_same_page_and_are_bounded(client):
    client.post("/logs", json=[record(container_type=t) for t in ("cpu", "ram", "io")])
    once = client.get("/logs", params=[("type", "cpu"), ("type", "ram")]).json()
    many = client.get("/logs", params=[("type", "cpu"), ("type", "ram")] * 16).json()
    assert once == many
    assert once["count"] == 2
    too_many = [("type", "cpu")] * (MAX_FILTER_VALUES + 1)
    for path in ("/logs", "/logs/export"):
        r = client.get(path, params=too_many)
        assert r.status_code == 422, path
        assert r.json()["detail"][0]["loc"] == ["query", "type"]
    r = client.get("/logs", params=[("event", "kill")] * (MAX_FILTER_VALUES + 1))
    assert r.json()["detail"][0]["loc"] == ["query", "event"]


def test_deep_offset_paging_is_refused_pointing_at_the_cursor(client):
    client.post("/logs", json=[record()])
    assert client.get("/logs", params={"offset": MAX_OFFSET}).status_code == 200
    for offset in (MAX_OFFSET + 1, 10**30):
        r = client.get("/logs", params={"offset": offset})
        assert r.status_code == 422
        [error] = r.json()["detail"]
        assert error["loc"] == ["query", "offset"]
        assert "cursor" in error["msg"]


@pytest.mark.slow
def test_requests_beyond_the_cap_get_503_with_retry_after(tmp_path: Path):
    """Two POSTs whose bodies never finish hold the two places; any other
    request is answered at once with 503, except the health check and the
    metrics; once they go, requests are served again."""
    with Server(tmp_path / "data", LOGGER_MAX_CONCURRENT_REQUESTS="2") as server:
        holders = []
        try:
            for _ in range(2):
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.sendall(
                    b"POST /logs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n["
                )
                holders.append(sock)
            busy: list[httpx.Response] = []

            def refused() -> bool:
                r = httpx.get(server.url + "/logs", timeout=5)
                busy.append(r)
                return r.status_code == 503

            wait_until("a request refused", refused)
            assert busy[-1].headers["retry-after"] == "1"
            assert "LOGGER_MAX_CONCURRENT_REQUESTS" in busy[-1].json()["detail"]
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            assert httpx.get(server.url + "/metrics", timeout=5).status_code == 200
        finally:
            for sock in holders:
                sock.close()
        wait_until(
            "requests served again",
            lambda: httpx.get(server.url + "/logs", timeout=5).status_code == 200,
        )
