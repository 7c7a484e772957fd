"""Shared fixtures: an app on a temporary database, driven by TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis.configuration import set_hypothesis_home_dir

from app.config import Settings
from app.main import create_app

TOKEN = "s3cret-token"

# Hypothesis keeps its caches beside pytest's, in the venv (a clean work tree).
set_hypothesis_home_dir(Path(__file__).resolve().parent.parent / ".venv" / ".hypothesis")


def make_client(data_dir: Path, **settings) -> TestClient:
    """An app on ``data_dir``; graphs are drawn in a thread (the real servers in
    test_server.py, the live page's and the image's tests use the render process)."""
    settings.setdefault("render_mode", "thread")
    return TestClient(create_app(Settings(data_dir=data_dir, **settings)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


@pytest.fixture
def token_client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, token=TOKEN) as c:
        yield c
