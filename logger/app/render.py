"""Graph rendering off the request path: a small limiter, a PNG cache, and a
separate process.

Drawing a graph is CPU-bound Python (matplotlib); run in the service's own
threads it would hold the interpreter lock while ingestion waits, and it
used to occupy the thread pool that ingestion needs. So:

- rendering runs in its own process pool (``LOGGER_RENDER_MODE=process``, the
  default; ``thread`` draws in threads of this process, which the TestClient
  tests use), at a lower CPU priority (``LOGGER_RENDER_NICE``), reading the
  database through its own read-only connection;
- at most ``slots`` renders run and ``queue`` more wait; any request beyond
  that is answered at once with 503 and ``Retry-After`` (``BusyError``);
- a rendered PNG is kept per (graph, aligned window, size, time bucket: the
  caller's clock rounded to LOGGER_GRAPH_CACHE_SECONDS) in a small LRU cache,
  so under steady ingest every reader within one bucket shares one render (a
  key that moved with every commit never hit); identical requests that arrive
  while it is being drawn wait for that one render instead of starting their
  own.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .windows import GraphRequest

log = logging.getLogger("logger.render")

RETRY_AFTER_SECONDS = 2


@dataclass(frozen=True)
class Rendered:
    png: bytes
    result: str  # rendered, shared (waited for an identical render) or cached


class BusyError(Exception):
    """Every render slot and queue place is taken: try again later."""

    retry_after = RETRY_AFTER_SECONDS


def draw_in_worker(db_path: Path, request: GraphRequest) -> bytes:
    """The render process's entry point (imports matplotlib there, not here)."""
    from .graphs import render_request

    return render_request(db_path, request)


def start_worker(nice: int) -> None:
    """The render process's initializer: rendering yields the CPU to the
    service (ingestion) whenever both want it."""
    if nice:
        os.nice(nice)


def warm_worker(db_path: Path) -> None:
    from .graphs import warm

    warm(db_path)


Draw = Callable[[Path, GraphRequest], bytes]


class Renderer:
    """Renders graphs for the routes; lives on the event loop."""

    def __init__(
        self,
        db_path: Path,
        *,
        mode: str = "process",
        nice: int = 10,
        slots: int = 1,
        queue: int = 4,
        cache_entries: int = 64,
        timeout: float = 30.0,
        executor: Executor | None = None,
        draw: Draw = draw_in_worker,
    ) -> None:
        self.db_path = db_path
        self.mode = mode
        self.nice = nice
        self.slots = max(slots, 1)
        self.queue = max(queue, 0)
        self.timeout = timeout
        self._draw = draw
        self._executor = executor
        self._owns_executor = executor is None
        self._cache: OrderedDict[tuple[GraphRequest, int], bytes] = OrderedDict()
        self._cache_entries = cache_entries
        self._inflight: dict[tuple[GraphRequest, int], asyncio.Task[bytes]] = {}
        self.active = 0  # renders running or waiting for a slot
        self.stopping = False
        self.closed = False

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.mode == "process":
                self._executor = ProcessPoolExecutor(
                    max_workers=self.slots,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=start_worker,
                    initargs=(self.nice,),
                )
            else:
                self._executor = ThreadPoolExecutor(self.slots, thread_name_prefix="render")
        return self._executor

    def warm(self) -> None:
        """Starts the render process now, so the first graph does not wait for it."""
        if self._owns_executor and self.mode == "process" and not self.closed:
            self._pool().submit(warm_worker, self.db_path)

    async def render(self, request: GraphRequest, epoch: int) -> Rendered:
        """The PNG for ``request``, drawn at most once per ``epoch`` (a time
        bucket) however many ask for it."""
        if self.stopping:
            raise BusyError
        key = (request, epoch)
        png = self._cache.get(key)
        if png is not None:
            self._cache.move_to_end(key)
            return Rendered(png, "cached")
        task = self._inflight.get(key)
        result = "shared"
        if task is None:
            if self.active >= self.slots + self.queue:
                raise BusyError
            self.active += 1
            task = asyncio.ensure_future(self._run(key))
            self._inflight[key] = task
            result = "rendered"
        try:
            png = await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            raise BusyError from None
        except asyncio.CancelledError:
            if self.stopping and task.cancelled():  # stop(): answer 503 now
                raise BusyError from None
            raise
        return Rendered(png, result)

    async def _run(self, key: tuple[GraphRequest, int]) -> bytes:
        loop = asyncio.get_running_loop()
        try:
            png = await loop.run_in_executor(self._pool(), self._draw, self.db_path, key[0])
        except BrokenProcessPool:
            # The render process died (killed, out of memory): start afresh next time.
            log.error("the render process died; starting a new one")
            self._executor = None
            raise BusyError from None
        finally:
            self.active -= 1
            self._inflight.pop(key, None)
        self._cache[key] = png
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
        return png

    def stop(self) -> None:
        """The server is shutting down: requests waiting for a graph get a 503
        at once instead of holding the shutdown up, and rendering stops."""
        self.stopping = True
        for task in list(self._inflight.values()):
            task.cancel()
        self.close()

    def close(self) -> None:
        """Stops rendering at once. The render process holds nothing but a
        read-only connection, so it is killed rather than left to finish
        (its interpreter's teardown would add a fraction of a second to every
        shutdown). Python 3.14 has ``kill_workers()``; before, the processes
        are only reachable through the executor's ``_processes``."""
        self.closed = True
        executor, self._executor = self._executor, None
        if executor is None or not self._owns_executor:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
