"""Fixtures: each test gets its own scope, gestor (with its own log service
container) and cleans everything up, whatever happens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Gestor, Scope


@pytest.fixture
def scope(request):
    s = Scope(request.node.name.replace("_", "")[:20])
    yield s
    s.cleanup()


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


@pytest.fixture
def make_gestor(scope, workdir):
    started: list[Gestor] = []

    def make(*extra: str) -> Gestor:
        g = Gestor(scope, workdir, *extra)
        started.append(g)
        return g.start()

    yield make
    for g in started:
        g.stop()
    for g in started:
        g.remove_logger()
