"""Shared fixtures: an app on a temporary database, driven by TestClient.

The storage and API tests run on both engines: the tests of the modules in
``BOTH_ENGINES`` (and every test using the ``client`` fixtures) run once on
SQLite and once on PostgreSQL, a real server this suite starts once
(tests/pg.py: initdb + pg_ctl in a scratch directory, Unix socket only).
``make_client`` follows the engine of the test that calls it: on PostgreSQL
each data directory gets a database of its own (a restart on the same
directory finds its records again)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis.configuration import set_hypothesis_home_dir

from app.config import Settings
from app.main import create_app

from .pg import PostgresCluster

TOKEN = "s3cret-token"
ENGINES = ("sqlite", "postgresql")
# Test modules whose every test runs on both engines.
BOTH_ENGINES = frozenset(
    {
        "test_alerts",
        "test_bad_input",
        "test_graphs",
        "test_logs_get",
        "test_logs_post",
        "test_metrics",
        "test_rollups",
    }
)
# Tests that reach into SQLite's file themselves: SQLite only.
SQLITE_ONLY = frozenset(
    {
        "test_a_stored_huge_host_ratio_does_not_break_the_cpu_graph",
        "test_a_busy_renderer_is_a_503_with_retry_after",
        "test_healthz_is_503_when_the_database_cannot_be_written",
    }
)

# Hypothesis keeps its caches beside pytest's, in the venv (a clean work tree).
set_hypothesis_home_dir(Path(__file__).resolve().parent.parent / ".venv" / ".hypothesis")


class _Engine:
    """The engine of the running test, and PostgreSQL's databases by data dir."""

    name = "sqlite"
    cluster: PostgresCluster | None = None
    urls: dict[Path, str] = {}  # noqa: RUF012 (one shared table, on purpose)

    @classmethod
    def drop_all(cls) -> None:
        """Drops the databases the test made: the suite's disk stays small."""
        if cls.cluster is not None:
            for url in cls.urls.values():
                cls.cluster.drop(url)
        cls.urls.clear()

    @classmethod
    def url_for(cls, data_dir: Path) -> str:
        assert cls.cluster is not None
        if data_dir not in cls.urls:
            cls.urls[data_dir] = cls.cluster.database()
        return cls.urls[data_dir]


def engine_settings(data_dir: Path) -> dict[str, str]:
    """The settings that put ``data_dir``'s service on the running test's engine."""
    if _Engine.name == "postgresql":
        return {"database_url": _Engine.url_for(data_dir)}
    return {}


def engine_env(data_dir: Path) -> dict[str, str]:
    """The same, as environment for a real server (tests/server.py)."""
    return {f"LOGGER_{k.upper()}": v for k, v in engine_settings(data_dir).items()}


def make_client(data_dir: Path, **settings) -> TestClient:
    """An app on ``data_dir``; graphs are drawn in a thread (the real servers in
    test_server.py, the live page's and the image's tests use the render process)."""
    settings.setdefault("render_mode", "thread")
    for key, value in engine_settings(data_dir).items():
        settings.setdefault(key, value)
    return TestClient(create_app(Settings(data_dir=data_dir, **settings)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    wants = module in BOTH_ENGINES or {"client", "token_client"} & set(metafunc.fixturenames)
    if (
        wants
        and metafunc.function.__name__ not in SQLITE_ONLY
        and "engine" in metafunc.fixturenames
    ):
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """``sqlite`` unless the test is parametrized over both engines."""
    name = getattr(request, "param", "sqlite")
    if name == "postgresql":
        _Engine.cluster = request.getfixturevalue("pg_cluster")
    _Engine.name = name
    try:
        yield name
    finally:
        _Engine.name = "sqlite"
        _Engine.drop_all()


@pytest.fixture
def client(tmp_path: Path, engine: str) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


@pytest.fixture
def token_client(tmp_path: Path, engine: str) -> Iterator[TestClient]:
    with make_client(tmp_path, token=TOKEN) as c:
        yield c
