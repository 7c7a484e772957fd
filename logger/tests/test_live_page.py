"""The live page: served from the app alone, and live in a real headless Chromium."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cdp import Browser
from tests.factory import now_ms, record, rfc3339, simulate
from tests.server import Server

STATIC_FILES = ["/static/live.js", "/static/style.css"]


def test_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for path in STATIC_FILES:
        assert path in page.text
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert len(asset.content) > 100


def test_page_loads_nothing_from_outside(client):
    for path in ["/", *STATIC_FILES]:
        text = client.get(path).text
        assert not re.search(r"https?://|//cdn|@import", text), path
    # Every src/href is local.
    for ref in re.findall(r'(?:src|href)="([^"]*)"', client.get("/").text):
        assert ref.startswith(("/", "data:")), ref


def test_missing_static_file_is_404(client):
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../app/main.py").status_code == 404


@pytest.mark.slow
def test_a_record_posted_after_the_page_opened_shows_within_two_seconds(tmp_path: Path):
    with Server(tmp_path / "data") as server, Browser() as browser:
        start = now_ms() - 30 * 60_000
        history = simulate(start, 120, per_type=2, seed=3)
        assert httpx.post(server.url + "/logs", json=history, timeout=30).status_code == 200

        browser.navigate(server.url + "/")
        browser.wait_for("document.body.dataset.live === 'connected'", timeout=20)
        browser.wait_for("document.querySelectorAll('#rows tr').length >= 100", timeout=10)
        took = browser.wait_for(
            "[...document.querySelectorAll('.graphs img')].every(i => i.naturalWidth >= 320)",
            timeout=30,
        )
        print(f"graphs shown {took:.2f} s after the page went live")
        assert browser.evaluate("document.getElementById('c-last').textContent").startswith("#120")
        kills_before = int(browser.evaluate("document.getElementById('c-kill').textContent"))

        rec = record(
            event="kill",
            container_type="disk",
            container_name="disk-live-check",
            time=rfc3339(now_ms()),
            reason="posted after the page opened",
        )
        posted = time.monotonic()
        r = httpx.post(server.url + "/logs", json=rec)
        assert r.status_code == 200
        browser.wait_for(f"!!document.querySelector('tr[data-id=\"{rec['id']}\"]')", timeout=2)
        elapsed = time.monotonic() - posted
        assert elapsed < 2, f"record appeared after {elapsed:.2f} s"

        row = browser.evaluate(f"document.querySelector('tr[data-id=\"{rec['id']}\"]').innerText")
        assert "disk-live-check" in row
        assert "posted after the page opened" in row
        first = browser.evaluate("document.querySelector('#rows tr').dataset.id")
        assert first == rec["id"], "the newest record is not on top"
        browser.wait_for(
            f"document.getElementById('c-kill').textContent === '{kills_before + 1}'", timeout=2
        )
        # The graphs are fetched again after new records (debounced).
        loaded = browser.evaluate("document.getElementById('g-kills').dataset.loaded")
        browser.wait_for(
            f"document.getElementById('g-kills').dataset.loaded !== '{loaded}'", timeout=10
        )
        shot = os.environ.get("LOGGER_SCREENSHOT")
        if shot:
            browser.screenshot(Path(shot))
        assert not browser.evaluate(
            "[...document.querySelectorAll('.graphs img')].some(i => i.dataset.failed)"
        ), "a graph failed to load"
        assert browser.exceptions() == []


ATTACKER_PAGE = """<!doctype html><html><body><script>
window.results = {};
const target = new URLSearchParams(location.search).get("target");
const body = JSON.stringify(%s);
async function attempt(name, init) {
  try { const r = await fetch(target + "/logs", init); window.results[name] = "sent " + r.type; }
  catch (e) { window.results[name] = "blocked"; }
}
(async () => {
  await attempt("text", {method: "POST", mode: "no-cors", body,
                         headers: {"Content-Type": "text/plain"}});
  await attempt("json", {method: "POST", body, headers: {"Content-Type": "application/json"}});
  window.done = true;
})();
</script></body></html>"""


@pytest.mark.slow
def test_a_web_page_of_another_origin_cannot_write_records(tmp_path: Path):
    """A page the operator opens elsewhere can send a text/plain POST without
    asking (no CORS preflight): it gets a 415 and stores nothing. An
    application/json POST makes the browser ask first (OPTIONS), which this
    service never allows, so it is never sent. No token is set here."""
    import functools
    import http.server
    import json
    import threading

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(ATTACKER_PAGE % json.dumps(record()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with Server(tmp_path / "data") as server, Browser() as browser:
            page = f"http://127.0.0.1:{other.server_port}/index.html?target={server.url}"
            browser.navigate(page)
            browser.wait_for("window.done === true", timeout=20)
            results = browser.evaluate("window.results")
            assert results == {"text": "sent opaque", "json": "blocked"}, results
            assert httpx.get(server.url + "/logs").json()["count"] == 0
            # The server saw one POST (refused) and the browser's question (OPTIONS,
            # refused too), never the application/json POST.
            seen = {
                (s.labels["method"], s.labels["code"]): s.value
                for family in text_string_to_metric_families(
                    httpx.get(server.url + "/metrics").text
                )
                for s in family.samples
                if s.name == "gestor_logger_request_duration_seconds_count"
                and s.labels["route"] == "/logs"
                and s.labels["method"] != "GET"  # the test's own look above
            }
            assert seen == {("POST", "415"): 1, ("OPTIONS", "405"): 1}, seen
    finally:
        other.shutdown()
        other.server_close()


@pytest.mark.slow
def test_an_alert_shows_on_the_live_page_as_it_fires_and_as_it_resolves(tmp_path: Path):
    """An alert notification (POST /alerts) appears in the list within 2 s and
    on the "alerts firing" card; its resolution takes it off the card. Its
    text is shown as text: markup in a label or an annotation stays inert."""
    from tests.test_alerts import alert, notification

    with Server(tmp_path / "data") as server, Browser() as browser:
        assert httpx.post(server.url + "/logs", json=simulate(now_ms() - 60_000, 3)).is_success
        browser.navigate(server.url + "/")
        browser.wait_for("document.body.dataset.live === 'connected'", timeout=20)
        assert browser.evaluate("document.getElementById('c-alerts').textContent") == "0"

        starts = now_ms() - 65_000
        firing = alert(host="<img src=x onerror=window.pwned=1>", starts_ms=starts)
        firing["annotations"]["summary"] = "<b>not bold</b>"
        posted = time.monotonic()
        assert httpx.post(server.url + "/alerts", json=notification(firing)).is_success
        row = "tr.ev-alert.alert-firing"
        browser.wait_for(f"!!document.querySelector('{row}')", timeout=2)
        assert time.monotonic() - posted < 2
        text = browser.evaluate(f"document.querySelector('{row}').innerText")
        assert "GestorDown" in text
        assert "<b>not bold</b>" in text
        browser.wait_for("document.getElementById('c-alerts').textContent === '1'", timeout=2)
        card = browser.evaluate("document.getElementById('c-alerts-list').innerText")
        assert "GestorDown @ <img src=x onerror=window.pwned=1> (critical)" in card
        assert browser.evaluate("document.querySelectorAll('#rows img, #counters img').length") == 0

        resolved = alert(
            "resolved", host=firing["labels"]["host"], starts_ms=starts, ends=rfc3339(now_ms())
        )
        assert httpx.post(server.url + "/alerts", json=notification(resolved)).is_success
        browser.wait_for("!!document.querySelector('tr.ev-alert.alert-resolved')", timeout=2)
        browser.wait_for("document.getElementById('c-alerts').textContent === '0'", timeout=2)
        # The event filter hides them like any other event.
        browser.evaluate(
            "const box = document.querySelector('#filters input[value=alert]');"
            " box.checked = false; box.dispatchEvent(new Event('change', {bubbles: true}))"
        )
        assert browser.evaluate(
            "[...document.querySelectorAll('tr.ev-alert')]"
            ".every(r => r.classList.contains('hidden'))"
        )
        assert browser.evaluate("window.pwned === undefined")
        assert browser.exceptions() == []


@pytest.mark.slow
def test_a_fleet_page_filters_by_host_and_shows_per_host_totals(tmp_path: Path):
    with Server(tmp_path / "data") as server, Browser() as browser:
        t = now_ms() - 60_000
        recs = [
            record(event=event, host=host, time=rfc3339(t + i * 1000))
            for i, (host, event) in enumerate(
                [("node-a", "cycle"), ("node-a", "kill"), ("node-a", "kill"), ("node-b", "cycle")]
            )
        ]
        assert httpx.post(server.url + "/logs", json=recs, timeout=30).status_code == 200
        browser.navigate(server.url + "/")
        browser.wait_for("document.querySelectorAll('#hosts tr').length === 2", timeout=20)
        totals = browser.evaluate(
            "[...document.querySelectorAll('#hosts tr')]"
            ".map(r => [...r.cells].slice(0, 4).map(c => c.textContent).join(' '))"
        )
        assert totals == ["node-a 3 1 2", "node-b 1 1 0"]
        browser.wait_for("document.querySelectorAll('#host option').length === 3", timeout=10)
        browser.wait_for("document.querySelectorAll('#rows tr').length === 4", timeout=10)
        browser.evaluate(
            "(() => { const s = document.getElementById('host'); s.value = 'node-b';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        visible = browser.evaluate(
            "[...document.querySelectorAll('#rows tr')]"
            ".filter(r => !r.classList.contains('hidden')).map(r => r.dataset.host)"
        )
        assert visible == ["node-b"]
        assert browser.evaluate("document.getElementById('export').getAttribute('href')") == (
            "/logs/export?host=node-b"
        )
        browser.wait_for(
            "[...document.querySelectorAll('.graphs img')]"
            ".every(i => i.src.includes('host=node-b'))",
            timeout=30,
        )
        assert not browser.exceptions()


def max_in_flight(events: list[dict], port: int) -> dict[str, int]:
    """The most requests of each path the browser had in flight at once,
    from the DevTools protocol's Network events (the stream left out)."""
    prefix = f"http://127.0.0.1:{port}"
    path_of: dict[str, str] = {}
    now: dict[str, int] = {}
    most: dict[str, int] = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(prefix):
                continue
            path = url[len(prefix) :].split("?", 1)[0]
            if path == "/events" or params["requestId"] in path_of:
                continue
            path_of[params["requestId"]] = path
            now[path] = now.get(path, 0) + 1
            most[path] = max(most.get(path, 0), now[path])
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            path = path_of.pop(params["requestId"], None)
            if path is not None:
                now[path] -= 1
    return most


@pytest.mark.slow
def test_the_page_keeps_at_most_one_request_of_each_kind_in_flight(tmp_path: Path):
    """Twenty range changes in a row (each asks for the hosts' totals and the
    three graphs at once): the browser never has two requests of one kind in
    flight, and what is shown in the end is for the last range chosen."""
    with Server(tmp_path / "data") as server, Browser() as browser:
        history = simulate(now_ms() - 30 * 60_000, 60, per_type=2, seed=3)
        assert httpx.post(server.url + "/logs", json=history, timeout=30).status_code == 200
        browser.call("Network.enable")
        browser.navigate(server.url + "/")
        browser.wait_for("document.body.dataset.live === 'connected'", timeout=20)
        browser.wait_for(
            "[...document.querySelectorAll('.graphs img')].every(i => i.naturalWidth >= 320)",
            timeout=30,
        )
        browser.evaluate(
            "(() => { const s = document.getElementById('range');"
            " const choices = ['15m', '6h', '24h', '7d', 'all'];"
            " for (let i = 0; i < 20; i++) { s.value = choices[i % 5];"
            " s.dispatchEvent(new Event('change')); } })()"
        )
        # The last choice was 'all' (i = 19): every graph ends up showing it.
        browser.wait_for(
            "[...document.querySelectorAll('.graphs img')].every(i => i.src.includes('range=all'))",
            timeout=30,
        )
        browser.wait_for(
            "document.getElementById('hosts-window').textContent === '(all records)'", 10
        )
        most = max_in_flight(browser.events, server.port)
        print(most)
        for path in ("/logs/hosts", "/graphs/cpu.png", "/graphs/memory.png", "/graphs/kills.png"):
            assert most.get(path) == 1, (path, most)
        assert all(n == 1 for n in most.values()), most
        assert browser.exceptions() == []
