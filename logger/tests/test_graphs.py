"""PNG graphs: they decode, have the asked size, show the data, follow its changes."""

from __future__ import annotations

import gc
from io import BytesIO

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from app.graphs import COLORS, bucket_ms
from tests.factory import record, rfc3339, simulate

T0 = 1_795_000_000_000
HOUR = 3_600_000
WINDOW = {"since": rfc3339(T0), "until": rfc3339(T0 + HOUR)}


@pytest.fixture
def next_bucket(monkeypatch):
    """Moves the graphs' clock on by a cache bucket (LOGGER_GRAPH_CACHE_SECONDS,
    10 s): a graph is drawn once per bucket, so changes show in the next."""
    from app.routers import graphs

    offset = [0]
    real = graphs.now_ms
    monkeypatch.setattr(graphs, "now_ms", lambda: real() + offset[0])

    def advance() -> None:
        offset[0] += 10_000

    return advance


def decode(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(BytesIO(response.content), format="png")


def color_pixels(image: np.ndarray, hex_color: str, tolerance: float = 0.06) -> int:
    """How many pixels are (about) this color."""
    rgb = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image[:, :, :3] - rgb).max(axis=2) < tolerance).sum())


def not_blank(image: np.ndarray) -> None:
    rgb = image[:, :, :3]
    assert rgb.std() > 0.05
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20
    non_white = (rgb < 0.95).any(axis=2).mean()
    assert 0.02 < non_white < 0.9


@pytest.fixture
def hour_of_data(client):
    recs = simulate(T0, 360, per_type=2, seed=7)  # 360 cycles of 10 s: one hour
    for start in range(0, len(recs), 500):
        assert client.post("/logs", json=recs[start : start + 500]).status_code == 200
    return client


@pytest.mark.parametrize("kind", ["memory", "cpu", "kills"])
def test_graph_decodes_with_the_asked_size_and_shows_every_type(hour_of_data, kind):
    image = decode(hour_of_data.get(f"/graphs/{kind}.png", params={**WINDOW, "width": 640}))
    assert image.shape[:2] == (360, 640)
    not_blank(image)
    for ctype in ("cpu", "ram", "io", "disk"):
        assert color_pixels(image, COLORS[ctype]) > 30, ctype


@pytest.mark.parametrize(("width", "height"), [(320, 200), (1000, 500), (1600, 900)])
def test_size_parameters(hour_of_data, width, height):
    params = {**WINDOW, "width": width, "height": height}
    image = decode(hour_of_data.get("/graphs/memory.png", params=params))
    assert image.shape[:2] == (height, width)


def test_cpu_graph_draws_the_host_line(hour_of_data):
    image = decode(hour_of_data.get("/graphs/cpu.png", params=WINDOW))
    assert color_pixels(image, "#444444", 0.03) > 50


def test_memory_graph_changes_when_data_change(hour_of_data, next_bucket):
    before = decode(hour_of_data.get("/graphs/memory.png", params=WINDOW))
    big = [
        record(
            time=rfc3339(T0 + 30 * 60_000 + i * 10_000),
            cycle=10_000 + i,
            container_type="ram",
            memory_bytes=8 * 1024**3,
        )
        for i in range(30)
    ]
    assert hour_of_data.post("/logs", json=big).json()["stored"] == 30
    next_bucket()
    after = decode(hour_of_data.get("/graphs/memory.png", params=WINDOW))
    assert before.shape == after.shape
    assert np.abs(before - after).sum() > 100


def test_kills_graph_changes_when_kills_are_added(client, next_bucket):
    def kills_image():
        return decode(client.get("/graphs/kills.png", params=WINDOW))

    empty = kills_image()
    assert color_pixels(empty, COLORS["io"]) == 0
    kills = [
        record(event="kill", container_type="io", time=rfc3339(T0 + i * 60_000))
        for i in range(0, 60, 5)
    ]
    client.post("/logs", json=kills)
    next_bucket()
    some = kills_image()
    assert color_pixels(some, COLORS["io"]) > 200
    client.post("/logs", json=[record(event="kill", container_type="disk", time=rfc3339(T0))])
    next_bucket()
    more = kills_image()
    assert color_pixels(more, COLORS["disk"]) > 20
    assert np.abs(more - some).sum() > 100


def test_records_outside_the_window_are_not_drawn(client):
    # The window is widened to whole buckets (a minute here): a kill five
    # minutes before it is outside.
    client.post(
        "/logs", json=[record(event="kill", container_type="cpu", time=rfc3339(T0 - 300_000))]
    )
    image = decode(client.get("/graphs/kills.png", params=WINDOW))
    assert color_pixels(image, COLORS["cpu"]) == 0


@pytest.mark.parametrize("kind", ["memory", "cpu", "kills"])
def test_empty_database_gives_a_no_data_graph(client, kind):
    image = decode(client.get(f"/graphs/{kind}.png"))
    assert image.shape[:2] == (360, 800)
    assert (image[:, :, :3] < 0.95).any(axis=2).mean() > 0.01  # axes and text


@pytest.mark.parametrize(
    "params",
    [
        {"range": "all"},
        {"range": "15m"},
        {"range": "7d"},
        {"range": "2w"},
        {"since": rfc3339(T0)},
        {"until": rfc3339(T0 + HOUR)},
        {"until": (T0 + HOUR) / 1000, "range": "30m"},
        {"since": T0 / 1000, "range": "10m"},
        {"since": "1970-01-01T00:00:00Z", "until": "8999-12-31T23:59:59Z"},
    ],
)
def test_time_range_forms(hour_of_data, params):
    for kind in ("memory", "kills"):
        decode(hour_of_data.get(f"/graphs/{kind}.png", params=params))


def test_range_all_spans_the_stored_records(hour_of_data):
    image = decode(hour_of_data.get("/graphs/memory.png", params={"range": "all"}))
    # The whole plot is drawn from data: the ram line reaches across.
    columns = np.where(
        (np.abs(image[:, :, :3] - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=2) < 0.06).any(
            axis=0
        )
    )[0]
    assert columns.max() - columns.min() > 0.7 * image.shape[1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"width": 10}, "width"),
        ({"width": 99999}, "width"),
        ({"height": "tall"}, "height"),
        ({"range": "forever"}, "range"),
        ({"range": "0m"}, "range"),
        ({"range": "-5m"}, "range"),
        ({"since": "tomorrow"}, "since"),
        ({"until": "inf"}, "until"),
        ({"since": rfc3339(T0 + HOUR), "until": rfc3339(T0)}, "since"),
        ({"since": rfc3339(T0), "until": rfc3339(T0)}, "since"),
        ({"range": "999999w"}, "range"),
        ({"since": "1969-12-31T23:59:59Z"}, "since"),
        ({"since": "0001-01-01T00:00:00Z", "until": "0001-01-01T00:10:00Z"}, "since"),
        ({"until": "1970-01-01T00:10:00Z", "range": "1h"}, "range"),
        ({"until": "9999-12-31T23:59:59Z"}, "until"),
    ],
)
def test_bad_graph_parameters_are_422(client, params, field):
    r = client.get("/graphs/cpu.png", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["query", field]


def test_unknown_graph_is_404(client):
    assert client.get("/graphs/disk.png").status_code == 404
    assert client.get("/graphs/cpu.svg").status_code == 404


def test_bucket_width_keeps_points_bounded():
    from app.graphs import Window

    for span in (1, 60_000, HOUR, 24 * HOUR, 365 * 24 * HOUR, 10**13):
        width = bucket_ms(Window(0, span), 200)
        assert span / width <= 200
        assert width % 60_000 == 0, "buckets are whole minutes, the rollups' grain"
    assert bucket_ms(Window(0, HOUR), 200) == 60_000
    assert bucket_ms(Window(0, 6 * HOUR), 200) == 120_000


def test_records_at_the_time_limits_still_draw(client):
    edges = [
        record(event="kill", time="1970-01-01T00:00:00.000Z"),
        record(event="kill", time="8999-12-31T23:59:59.999Z"),
    ]
    assert client.post("/logs", json=edges).json()["stored"] == 2
    for kind in ("memory", "cpu", "kills"):
        decode(client.get(f"/graphs/{kind}.png", params={"range": "all"}))
    assert (
        client.get("/logs", params={"since": 0, "until": "8999-12-31T23:59:59.999Z"}).json()[
            "count"
        ]
        == 2
    )


def test_host_parameter_draws_only_that_hosts_records(client):
    # A fleet's log service: node-a killed io containers, node-b disk ones.
    client.post(
        "/logs",
        json=[
            record(event="kill", container_type=kind, host=host, time=rfc3339(T0 + i * 60_000))
            for i in range(0, 60, 5)
            for host, kind in (("node-a", "io"), ("node-b", "disk"))
        ],
    )

    def kills(**params):
        return decode(client.get("/graphs/kills.png", params={**WINDOW, **params}))

    every = kills()
    assert color_pixels(every, COLORS["io"]) > 200
    assert color_pixels(every, COLORS["disk"]) > 200
    only_a = kills(host="node-a")
    assert color_pixels(only_a, COLORS["io"]) > 200
    assert color_pixels(only_a, COLORS["disk"]) == 0
    only_b = kills(host="node-b")
    assert color_pixels(only_b, COLORS["disk"]) > 200
    assert color_pixels(only_b, COLORS["io"]) == 0
    assert color_pixels(kills(host="node-c"), COLORS["io"]) == 0


def test_host_parameter_filters_the_usage_graphs(hour_of_data):
    client = hour_of_data
    for kind in ("memory", "cpu"):
        shown = decode(client.get(f"/graphs/{kind}.png", params=WINDOW))
        other = decode(client.get(f"/graphs/{kind}.png", params={**WINDOW, "host": "no-such"}))
        assert sum(color_pixels(shown, COLORS[t]) for t in ("cpu", "ram", "io", "disk")) > 200
        assert sum(color_pixels(other, COLORS[t]) for t in ("cpu", "ram", "io", "disk")) == 0


def test_a_figure_is_freed_as_soon_as_it_is_drawn(client, hour_of_data):
    """A figure's reference cycles are collected right after its render (a
    young collection), never left for a full collection in a later one."""
    gc.collect()
    assert client.get("/graphs/memory.png", params={**WINDOW, "width": 640}).status_code == 200
    assert gc.isenabled()
    figures = [o for o in gc.get_objects() if isinstance(o, Figure)]
    assert figures == []
