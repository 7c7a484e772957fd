"""Graphs never starve ingestion (issue 12): rendering has its own small
limiter (busy: 503 with Retry-After), a PNG cache keyed by graph, aligned
window, size and the last write, and windows aligned to the bucket width so
identical requests share one result."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

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


def test_an_identical_request_is_served_from_the_cache(with_data):
    params = {"since": rfc3339(T0), "until": rfc3339(T0 + HOUR)}
    first = with_data.get("/graphs/memory.png", params=params)
    second = with_data.get("/graphs/memory.png", params=params)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert requests_total(with_data, "memory", "rendered") == 1
    assert requests_total(with_data, "memory", "cached") == 1


def test_a_write_makes_the_next_request_render_again(with_data):
    params = {"since": rfc3339(T0), "until": rfc3339(T0 + HOUR)}
    with_data.get("/graphs/kills.png", params=params)
    kill = record(event="kill", container_type="io", time=rfc3339(T0 + 60_000))
    assert with_data.post("/logs", json=kill).json()["stored"] == 1
    with_data.get("/graphs/kills.png", params=params)
    assert requests_total(with_data, "kills", "rendered") == 2
    # A duplicate changes nothing: still cached.
    assert with_data.post("/logs", json=kill).json()["stored"] == 0
    with_data.get("/graphs/kills.png", params=params)
    assert requests_total(with_data, "kills", "cached") == 1


def test_windows_inside_the_same_buckets_share_one_render(with_data):
    # 1 h at 800 px: 30 s buckets. These windows differ by a few seconds.
    a = {"since": rfc3339(T0 + 1_000), "until": rfc3339(T0 + HOUR + 1_000)}
    b = {"since": rfc3339(T0 + 7_000), "until": rfc3339(T0 + HOUR + 9_000)}
    first = with_data.get("/graphs/cpu.png", params=a)
    second = with_data.get("/graphs/cpu.png", params=b)
    assert first.content == second.content
    assert requests_total(with_data, "cpu", "rendered") == 1


def test_align_widens_to_whole_buckets():
    window, bucket = align(T0 + 1_000, T0 + HOUR + 1_000, max_buckets=266)
    assert bucket == 30_000
    assert window.since_ms % bucket == 0
    assert window.until_ms % bucket == 0
    assert window.since_ms <= T0 + 1_000
    assert window.until_ms >= T0 + HOUR + 1_000
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
        running = asyncio.ensure_future(renderer.render(req(800), generation=1))
        await asyncio.to_thread(gate.started.acquire)
        waiting = asyncio.ensure_future(renderer.render(req(900), generation=1))
        same = asyncio.ensure_future(renderer.render(req(800), generation=1))
        await asyncio.sleep(0)
        with pytest.raises(BusyError):
            await renderer.render(req(1000), generation=1)
        gate.release.set()
        results = await asyncio.gather(running, waiting, same)
        cached = await renderer.render(req(800), generation=1)
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
