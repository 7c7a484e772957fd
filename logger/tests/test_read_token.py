"""LOGGER_READ_TOKEN: every read needs it (Bearer or Basic auth), the health
check and the metrics stay open, and a browser opens the live page with it."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.cdp import Browser
from tests.conftest import TOKEN, make_client
from tests.factory import now_ms, record, rfc3339, simulate
from tests.server import Server

READ_TOKEN = "r3ad-t0ken"
READS = [
    "/",
    "/logs",
    "/logs/hosts",
    "/logs/export",
    "/stats",
    "/graphs/cpu.png?range=1h",
    "/graphs/kills.png?range=1h",
]
OPEN = ["/healthz", "/metrics"]


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


BEARER = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture
def read_client(tmp_path: Path):
    with make_client(tmp_path, token=TOKEN, read_token=READ_TOKEN) as c:
        yield c


@pytest.mark.parametrize("path", READS)
def test_a_read_without_the_token_is_401_with_a_basic_challenge(read_client, path):
    r = read_client.get(path)
    assert r.status_code == 401, path
    assert r.headers["www-authenticate"] == 'Basic realm="gestor logs"'
    assert "read token" in r.json()["detail"]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    "headers",
    [BEARER, basic("anyone", READ_TOKEN), basic("", READ_TOKEN)],
    ids=["bearer", "basic", "basic-no-user"],
)
def test_a_read_with_the_token_works(read_client, path, headers):
    assert read_client.get(path, headers=headers).status_code == 200, path


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}"},  # the write token is not a read token
        basic(READ_TOKEN, "wrong"),  # the token as user name, not password
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(READ_TOKEN.encode()).decode()},  # no colon
        {"Authorization": READ_TOKEN},
        {"Authorization": f"Token {READ_TOKEN}"},
    ],
)
def test_wrong_credentials_are_401(read_client, headers):
    assert read_client.get("/logs", headers=headers).status_code == 401


def test_the_stream_needs_the_token(tmp_path: Path):
    # /events never ends, so it is checked on a real server.
    with Server(tmp_path / "data", LOGGER_READ_TOKEN=READ_TOKEN) as server:
        r = httpx.get(server.url + "/events", timeout=5)
        assert r.status_code == 401
        with httpx.stream("GET", server.url + "/events", headers=BEARER, timeout=5) as ok:
            assert ok.status_code == 200
            assert ok.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("path", OPEN)
def test_health_and_metrics_stay_open(read_client, path):
    assert read_client.get(path).status_code == 200


def test_writes_need_the_write_token_not_the_read_token(read_client):
    rec = record()
    assert read_client.post("/logs", json=rec, headers=BEARER).status_code == 401
    ok = read_client.post("/logs", json=rec, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    page = read_client.get("/logs", headers=BEARER).json()
    assert [item["id"] for item in page["items"]] == [rec["id"]]


def test_without_a_read_token_reads_stay_open(client):
    for path in READS:
        assert client.get(path).status_code == 200, path


def test_tokens_are_read_from_files(tmp_path: Path, monkeypatch):
    (tmp_path / "write").write_text("from-a-file\n")
    (tmp_path / "read").write_text("  read-from-a-file\n")
    monkeypatch.setenv("LOGGER_TOKEN_FILE", str(tmp_path / "write"))
    monkeypatch.setenv("LOGGER_READ_TOKEN_FILE", str(tmp_path / "read"))
    settings = Settings(data_dir=tmp_path)
    assert settings.token == "from-a-file"
    assert settings.read_token == "read-from-a-file"
    # A token given directly overrides its file (the env file as an override).
    monkeypatch.setenv("LOGGER_READ_TOKEN", "direct")
    assert Settings(data_dir=tmp_path).read_token == "direct"
    # An empty one (compose's `${LOGGER_READ_TOKEN:-}`) does not.
    monkeypatch.setenv("LOGGER_READ_TOKEN", "")
    assert Settings(data_dir=tmp_path).read_token == "read-from-a-file"


@pytest.mark.parametrize("content", [None, "", "\n  \n"], ids=["missing", "empty", "blank"])
def test_a_token_file_that_gives_no_token_is_a_clear_error(tmp_path: Path, monkeypatch, content):
    path = tmp_path / "read"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("LOGGER_READ_TOKEN_FILE", str(path))
    with pytest.raises(ValidationError, match=f"LOGGER_READ_TOKEN_FILE={path}"):
        Settings(data_dir=tmp_path)


def test_the_token_file_on_a_real_server(tmp_path: Path):
    secret = tmp_path / "read-token"
    secret.write_text(READ_TOKEN + "\n")
    with Server(tmp_path / "data", LOGGER_READ_TOKEN_FILE=str(secret)) as server:
        assert httpx.get(server.url + "/logs").status_code == 401
        assert httpx.get(server.url + "/logs", headers=BEARER).status_code == 200


@pytest.mark.slow
def test_the_live_page_works_in_a_browser_with_basic_auth(tmp_path: Path):
    """The browser gets the Basic prompt on `/`; once answered, the page's own
    fetches, graph images and its EventSource carry the credentials: the page
    goes live, shows the records and the graphs, and a new record within 2 s."""
    with (
        Server(tmp_path / "data", LOGGER_READ_TOKEN=READ_TOKEN) as server,
        Browser() as browser,
    ):
        history = simulate(now_ms() - 10 * 60_000, 30, per_type=2, seed=5)
        assert httpx.post(server.url + "/logs", json=history, timeout=30).status_code == 200
        prompts = browser.navigate_with_login(server.url + "/", "operator", READ_TOKEN)
        assert prompts >= 1, "the page was served without asking for the token"
        browser.wait_for("document.body.dataset.live === 'connected'", timeout=20)
        browser.wait_for("document.querySelectorAll('#rows tr').length >= 100", timeout=10)
        browser.wait_for("document.getElementById('c-last').textContent.startsWith('#30')", 10)
        browser.wait_for(
            "[...document.querySelectorAll('.graphs img')].every(i => i.naturalWidth >= 320)",
            timeout=30,
        )
        rec = record(event="kill", time=rfc3339(now_ms()), reason="seen through basic auth")
        posted = time.monotonic()
        assert httpx.post(server.url + "/logs", json=rec).status_code == 200
        browser.wait_for(f"!!document.querySelector('tr[data-id=\"{rec['id']}\"]')", timeout=2)
        assert time.monotonic() - posted < 2
        browser.wait_for("document.querySelectorAll('#hosts tr').length === 1", timeout=10)
        assert browser.exceptions() == []


@pytest.mark.slow
def test_a_browser_without_the_token_sees_nothing(tmp_path: Path):
    with (
        Server(tmp_path / "data", LOGGER_READ_TOKEN=READ_TOKEN) as server,
        Browser() as browser,
    ):
        rec = record(reason="a secret reason")
        assert httpx.post(server.url + "/logs", json=rec).status_code == 200
        browser.navigate_with_login(server.url + "/", "operator", "not-the-token")
        body = browser.evaluate("document.body ? document.body.innerText : ''")
        assert "a secret reason" not in body
        assert not browser.evaluate("!!document.getElementById('rows')")
