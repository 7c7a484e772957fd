"""PNG graphs drawn with matplotlib's object API (a ``Figure`` on Agg, never pyplot).

This module runs in the render process (``app.render``), never in the service
process itself: drawing is CPU-bound Python and would otherwise compete with
ingestion for the interpreter lock. It reads the database through its own
read-only connection. The database does the heavy lifting: records are
aggregated into at most a few hundred time buckets in SQL, so a graph over
100,000 records draws a few hundred points.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import db as queries
from .windows import NICE_BUCKETS_MS, GraphRequest, Window, bucket_ms

__all__ = ["COLORS", "KINDS", "NICE_BUCKETS_MS", "Window", "bucket_ms", "render_request", "warm"]

KINDS = ("memory", "cpu", "kills")
TYPES = ("cpu", "ram", "io", "disk", "unknown")
COLORS = {
    "cpu": "#d62728",
    "ram": "#1f77b4",
    "io": "#2ca02c",
    "disk": "#ff7f0e",
    "unknown": "#7f7f7f",
}
RUN_MARKER = "#9467bd"  # a vertical line where a gestor run started
DPI = 100

# Agg itself is fine per figure, but font and text caches are process-wide:
# draw one figure at a time (when rendering runs in threads).
_RENDER_LOCK = threading.Lock()
_CONNECTIONS = threading.local()
_MAX_CONNECTIONS = 4


def _label(width_ms: int) -> str:
    seconds = width_ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _times(window: Window, width: int, count: int) -> np.ndarray:
    starts = window.since_ms + np.arange(count, dtype=np.int64) * width
    return starts.astype("datetime64[ms]")


def _font_size(width: int) -> float:
    return 7.0 if width < 560 else 9.0 if width < 900 else 10.0


def _new_figure(width: int, height: int) -> tuple[Figure, object]:
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    # Fixed margins in pixels: a layout engine would cost more than the drawing.
    fig.subplots_adjust(
        left=72 / width, right=1 - 16 / width, bottom=44 / height, top=1 - 28 / height
    )
    ax = fig.add_subplot()
    ax.tick_params(labelsize=_font_size(width))
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _labels(ax, width: int, title: str, unit: str) -> None:
    size = _font_size(width)
    # A title placed where asked (y given): matplotlib's automatic placement
    # measures the x axis' tick labels on every draw, 10-15 % of a render.
    ax.set_title(title, fontsize=size + 1.5, y=1.0, pad=6.0)
    ax.set_ylabel(unit, fontsize=size)
    ax.set_xlabel("time (UTC)", fontsize=size)
    ax.xaxis.get_offset_text().set_fontsize(size)


def _time_axis(ax, window: Window) -> None:
    locator = AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    lo = np.datetime64(window.since_ms, "ms")
    hi = np.datetime64(window.until_ms, "ms")
    if hi <= lo:
        hi = lo + np.timedelta64(1000, "ms")
    ax.set_xlim(lo, hi)


def _no_data(ax) -> None:
    ax.text(
        0.5,
        0.5,
        "no records in this range",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="#888888",
    )


@contextlib.contextmanager
def _garbage_freed_young() -> Iterator[None]:
    """No automatic collection while a graph is drawn, one of the youngest
    generation after. A figure is a web of reference cycles that only the
    cyclic collector frees; collections that run while it is drawn promote
    it, and its garbage piled up until a full collection (traversing every
    object of matplotlib's) took 55-90 ms out of some unlucky render: the
    slowest renders were twice the median. Collected young, right after its
    render, a figure's garbage costs about 1.5 ms."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect(0)
        if enabled:
            gc.enable()


def _png(fig: Figure) -> bytes:
    out = BytesIO()
    # Light zlib compression: a few KiB more, encoded in a third of the time.
    fig.savefig(out, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return out.getvalue()


def _connection(path: Path) -> sqlite3.Connection:
    """This thread's read-only connection to ``path`` (a few kept, oldest closed)."""
    conns: OrderedDict[Path, sqlite3.Connection] | None = getattr(_CONNECTIONS, "conns", None)
    if conns is None:
        conns = _CONNECTIONS.conns = OrderedDict()
    conn = conns.get(path)
    if conn is None:
        conn = queries.connect(path, read_only=True)
        conns[path] = conn
        while len(conns) > _MAX_CONNECTIONS:
            conns.popitem(last=False)[1].close()
    conns.move_to_end(path)
    return conn


def warm(db_path: Path) -> None:
    """Imports done and connection open: the first real render is not slower."""
    _connection(db_path).execute("SELECT 1").fetchall()


def render_request(db_path: Path, request: GraphRequest) -> bytes:
    """The PNG for ``request``, read from the database at ``db_path`` (the
    render process's entry point)."""
    conn = _connection(db_path)
    window = Window(request.since_ms, request.until_ms)
    width_ms = request.bucket_ms
    conn.execute("BEGIN")  # one read transaction: every series from the same snapshot
    try:
        only = request.host
        runs = queries.runs(conn, window.since_ms, window.until_ms, only)
        if request.kind == "kills":
            rows = queries.kill_series(conn, window.since_ms, window.until_ms, width_ms, only)
        else:
            column = "memory_bytes" if request.kind == "memory" else "cpu_ratio"
            rows = queries.usage_series(
                conn, column, window.since_ms, window.until_ms, width_ms, only
            )
            host = (
                queries.host_cpu_series(conn, window.since_ms, window.until_ms, width_ms, only)
                if request.kind == "cpu"
                else []
            )
    finally:
        conn.execute("COMMIT")
    starts = sorted({first for _, _, first, _ in runs})
    with _RENDER_LOCK, _garbage_freed_young():
        if request.kind == "kills":
            return _draw_kills(rows, starts, window, width_ms, request.width, request.height)
        return _draw_usage(
            request.kind, rows, host, starts, window, width_ms, request.width, request.height
        )


# Starts closer than this many pixels are drawn as one line (about the
# dashed line's width: lines that close overlap anyway).
MARKER_PIXELS = 2


def marker_times(starts: list[int], window: Window, pixels: float) -> list[int]:
    """The starts (sorted) that get a line of their own on an axis ``pixels``
    wide: the first of each ``MARKER_PIXELS`` column. A fleet's hosts
    restarted together are hundreds of starts within a few pixels; a line
    each cost 20 ms a render for 500 of them."""
    ms_per_column = window.span_ms * MARKER_PIXELS / max(pixels, 1.0)
    kept: list[int] = []
    last = None
    for start in starts:
        column = int((start - window.since_ms) // ms_per_column)
        if column != last:
            kept.append(start)
            last = column
    return kept


def _run_markers(ax, starts: list[int], window: Window) -> None:
    """A dashed vertical line where gestor (re)started inside the window."""
    starts = marker_times(starts, window, ax.bbox.width)
    if starts:
        ax.vlines(
            np.array(starts, dtype="datetime64[ms]"),
            0,
            1,
            transform=ax.get_xaxis_transform(),
            colors=RUN_MARKER,
            linestyles="--",
            linewidth=1.6,
            label="gestor start",
        )


def _marker(values: np.ndarray, width: int) -> str | None:
    """Dots where points are few, so isolated values (between gaps) still show."""
    return "." if np.isfinite(values).sum() <= width / 8 else None


def _draw_usage(kind, rows, host, starts, window, width_ms, width, height) -> bytes:
    count = window.span_ms // width_ms + 1
    scale = 1 / (1024 * 1024) if kind == "memory" else 100.0
    series: dict[str, np.ndarray] = {}
    for bucket, ctype, value in rows:
        if 0 <= bucket < count:
            if ctype not in series:
                series[ctype] = np.full(count, np.nan)
            series[ctype][bucket] = value * scale
    fig, ax = _new_figure(width, height)
    times = _times(window, width_ms, count)
    for ctype in TYPES:
        if ctype in series:
            ax.plot(
                times,
                series[ctype],
                color=COLORS[ctype],
                linewidth=1.6,
                marker=_marker(series[ctype], width),
                label=ctype,
            )
    drawn = list(series.values())
    _run_markers(ax, starts, window)
    if host:
        values = np.full(count, np.nan)
        for bucket, value in host:
            if 0 <= bucket < count:
                values[bucket] = value * 100.0
        ax.plot(
            times,
            values,
            color="#444444",
            linestyle="--",
            linewidth=1.0,
            marker=_marker(values, width),
            markersize=3,
            label="host",
        )
        drawn.append(values)
    finite = [float(np.nanmax(v[np.isfinite(v)])) for v in drawn if np.isfinite(v).any()]
    if finite:
        ax.legend(loc="upper left", fontsize=_font_size(width) - 1, ncols=7, frameon=False)
        top = max(finite) * 1.2  # headroom for the legend
        ax.set_ylim(0, top if np.isfinite(top) and top > 1e-3 else max(*finite, 1e-3))
    else:
        _no_data(ax)
    if kind == "memory":
        title, unit = "Memory by container type", "MiB"
    else:
        title, unit = "CPU by container type", "% of host CPUs"
    _labels(ax, width, f"{title} (mean per {_label(width_ms)})", unit)
    _time_axis(ax, window)
    return _png(fig)


def _draw_kills(rows, starts, window, width_ms, width, height) -> bytes:
    count = window.span_ms // width_ms + 1
    series: dict[str, np.ndarray] = {}
    for bucket, ctype, n in rows:
        if 0 <= bucket < count:
            key = ctype if ctype in COLORS else "unknown"
            if key not in series:
                series[key] = np.zeros(count)
            series[key][bucket] += n
    fig, ax = _new_figure(width, height)
    ax.xaxis.axis_date(tz=UTC)
    # One filled step patch per type (stacked), far cheaper than a bar per bucket.
    edges = date2num(_times(window, width_ms, count + 1))
    bottom = np.zeros(count)
    for ctype in TYPES:
        if ctype in series:
            top = bottom + series[ctype]
            ax.stairs(
                top,
                edges,
                baseline=bottom,
                fill=True,
                color=COLORS[ctype],
                label=ctype,
            )
            bottom = top
    _run_markers(ax, starts, window)
    if series:
        ax.legend(loc="upper left", fontsize=_font_size(width) - 1, ncols=5, frameon=False)
        ax.set_ylim(0, max(float(bottom.max()) * 1.2, 1.0))
    else:
        _no_data(ax)
        ax.set_ylim(0, 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _labels(ax, width, f"Kills by container type (per {_label(width_ms)})", "containers killed")
    _time_axis(ax, window)
    return _png(fig)
