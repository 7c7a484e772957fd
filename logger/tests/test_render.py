"""Graphs never starve ingestion (issue 12): rendering has its own small
limiter (busy: 503 with Retry-After), a PNG cache keyed by graph, aligned
window, size and a time bucket (issue 25: not the last write, which moved on
every commit), windows aligned to the bucket width, and identical concurrent
requests coalesced into one render."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.render import BusyError, GraphRequest, Renderer
from app.windows import align
from tests.factory import record, rfc3339, simulate

T0 = 1_795_000_000_000
HOUR = 3_600_000


def requests_total(client, kind: str, result: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gestor_logger_graph_requests_total{") and (
            f'kind="{kind}"' in line and f'result="{result}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def with_data(client):
    recs = simulate(T0, 120, per_type=1, seed=7, run_id="a" * 32)
    assert client.post("/logs", json=recs).status_code == 200
    return client


@pytest.fixture
def still_clock(monkeypatch):
    """The graphs' clock held still: the cache's time bucket (the clock
    rounded to 10 s) cannot turn between two requests of one test."""
    monkeypatch.setattr("app.routers.graphs.now_ms", lambda: T0 + 2 * HOUR)


def test_an_identical_request_is_served_from_the_cache(with_data, still_clock):
    params = {"since": rfc3339(T0), "until": rfc3339(T0 + HOUR)}
    first = with_data.get("/graphs/memory.png", params=params)
    second = with_data.get("/graphs/memory.png", params=params)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert requests_total(with_data, "memory", "rendered") == 1
    assert requests_total(with_data, "memory", "cached") == 1


def test_under_steady_ingest_a_graph_is_drawn_once_per_time_bucket(with_data, monkeypatch):
    """The cache is keyed by the clock rounded to LOGGER_GRAPH_CACHE_SECONDS
    (10 s): writes within a bucket do not make readers draw again; the next
    bucket shows them."""
    clock = [T0 + 2 * HOUR]
    monkeypatch.setattr("app.routers.graphs.now_ms", lambda: clock[0])
    params = {"since": rfc3339(T0), "until": rfc3339(T0 + HOUR)}
    first = with_data.get("/graphs/kills.png", params=params)
    for i in range(3):  # steady ingest, a reader after each write
        kill = record(event="kill", container_type="io", time=rfc3339(T0 + 60_000 * (i + 1)))
        assert with_data.post("/logs", json=kill).json()["stored"] == 1
        clock[0] += 3_000
        assert with_data.get("/graphs/kills.png", params=params).content == first.content
    assert requests_total(with_data, "kills", "rendered") == 1
    assert requests_total(with_data, "kills", "cached") == 3
    clock[0] += 10_000  # the next bucket: drawn again, with the new kills
    later = with_data.get("/graphs/kills.png", params=params)
    assert requests_total(with_data, "kills", "rendered") == 2
    assert later.content != first.content


def test_windows_inside_the_same_buckets_share_one_render(with_data, still_clock):
    # 1 h at 800 px: 1 min buckets. These windows differ by a few seconds.
    a = {"since": rfc3339(T0 + 1_000), "until": rfc3339(T0 + HOUR + 1_000)}
    b = {"since": rfc3339(T0 + 7_000), "until": rfc3339(T0 + HOUR + 9_000)}
    first = with_data.get("/graphs/cpu.png", params=a)
    second = with_data.get("/graphs/cpu.png", params=b)
    assert first.content == second.content
    assert requests_total(with_data, "cpu", "rendered") == 1


def test_align_widens_to_whole_buckets():
    window, bucket = align(T0 + 1_000, T0 + 6 * HOUR + 1_000, max_buckets=266)
    assert bucket == 120_000
    assert window.since_ms % bucket == 0
    assert window.until_ms % bucket == 0
    assert window.since_ms <= T0 + 1_000
    assert window.until_ms >= T0 + 6 * HOUR + 1_000
    assert (window.until_ms - window.since_ms) // bucket <= 266 + 2


class Gate:
    """A draw function that waits until the test lets it finish."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.calls = 0

    def __call__(self, db_path, request: GraphRequest) -> bytes:
        self.calls += 1
        self.started.release()
        assert self.release.wait(10)
        return f"png {request.kind} {request.width}".encode()


def test_the_limiter_answers_busy_beyond_its_slots_and_identical_requests_share(tmp_path):
    gate = Gate()
    executor = ThreadPoolExecutor(1)
    renderer = Renderer(
        tmp_path / "x.sqlite3",
        slots=1,
        queue=1,
        cache_entries=8,
        timeout=10,
        executor=executor,
        draw=gate,
    )

    def req(width: int) -> GraphRequest:
        return GraphRequest("memory", T0, T0 + HOUR, 30_000, width, 360)

    async def scenario():
        running = asyncio.ensure_future(renderer.render(req(800), epoch=1))
        await asyncio.to_thread(gate.started.acquire)
        waiting = asyncio.ensure_future(renderer.render(req(900), epoch=1))
        same = asyncio.ensure_future(renderer.render(req(800), epoch=1))
        await asyncio.sleep(0)
        with pytest.raises(BusyError):
            await renderer.render(req(1000), epoch=1)
        gate.release.set()
        results = await asyncio.gather(running, waiting, same)
        cached = await renderer.render(req(800), epoch=1)
        return results, cached

    try:
        results, cached = asyncio.run(scenario())
    finally:
        executor.shutdown()
    assert [r.png for r in results] == [b"png memory 800", b"png memory 900", b"png memory 800"]
    assert [r.result for r in results] == ["rendered", "rendered", "shared"]
    assert cached.result == "cached"
    assert gate.calls == 2


def test_a_busy_renderer_is_a_503_with_retry_after(client):
    gate = Gate()
    executor = ThreadPoolExecutor(1)
    client.app.state.renderer = Renderer(
        client.app.state.db.path,
        slots=1,
        queue=0,
        cache_entries=8,
        timeout=10,
        executor=executor,
        draw=gate,
    )
    results: list = []
    thread = threading.Thread(
        target=lambda: results.append(client.get("/graphs/memory.png", params={"width": 700}))
    )
    thread.start()
    try:
        assert gate.started.acquire(timeout=10)
        busy = client.get("/graphs/memory.png", params={"width": 900})
        assert busy.status_code == 503
        assert int(busy.headers["retry-after"]) >= 1
        # Ingestion is not held up by a busy renderer.
        assert client.post("/logs", json=record()).status_code == 200
    finally:
        gate.release.set()
        thread.join(10)
        executor.shutdown()
    assert results[0].status_code == 200
    assert requests_total(client, "memory", "busy") == 1


@pytest.mark.slow
def test_identical_concurrent_graph_requests_are_drawn_once(tmp_path):
    """Eight readers ask for the same graph at the same moment (a real server,
    the render process): one render, every reader gets its PNG."""
    from tests.server import Server

    with Server(tmp_path / "data", LOGGER_GRAPH_CACHE_SECONDS="3600") as server:
        recs = simulate(T0, 120, per_type=1, seed=7, run_id="a" * 32)
        assert httpx.post(server.url + "/logs", json=recs, timeout=30).status_code == 200
        params = {"since": rfc3339(T0), "until": rfc3339(T0 + HOUR), "width": 1000}
        barrier = threading.Barrier(8)

        def fetch(_: int) -> bytes:
            barrier.wait(timeout=10)
            r = httpx.get(server.url + "/graphs/cpu.png", params=params, timeout=60)
            assert r.status_code == 200, r.text
            return r.content

        with ThreadPoolExecutor(8) as pool:
            pngs = list(pool.map(fetch, range(8)))
        assert len(set(pngs)) == 1
        assert pngs[0][:4] == b"\x89PNG"
        metrics = httpx.get(server.url + "/metrics").text
        counts = {
            result: requests_total_in(metrics, "cpu", result)
            for result in ("rendered", "shared", "cached", "busy")
        }
        print(counts)
        assert counts["rendered"] == 1, counts
        assert counts["shared"] + counts["cached"] == 7, counts


def requests_total_in(text: str, kind: str, result: str) -> float:
    for line in text.splitlines():
        if line.startswith("gestor_logger_graph_requests_total{") and (
            f'kind="{kind}"' in line and f'result="{result}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
