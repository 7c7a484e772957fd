"""One bad record costs only itself (issue 25): a batch's valid records are
stored, the invalid ones named in `rejected` as gestor's shipper reads it, and
no number that is not finite is stored anywhere in a record."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cdp import Browser
from tests.factory import now_ms, record, rfc3339
from tests.server import Server

JSON = {"content-type": "application/json"}


def strict_json(text: str) -> Any:
    """JSON as a standard parser reads it: NaN and Infinity are errors."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def exported(client_or_url: Any) -> list[dict[str, Any]]:
    if isinstance(client_or_url, str):
        text = httpx.get(client_or_url + "/logs/export", timeout=30).text
    else:
        text = client_or_url.get("/logs/export").text
    return [strict_json(line) for line in text.splitlines()]


def batch_of_100_with(bad: str, at: int = 42) -> tuple[bytes, list[dict[str, Any]]]:
    """A batch of 100 records as JSON text, the one at ``at`` replaced by the
    text ``bad`` (so it can hold what Python's json would not write)."""
    records = [record(time=rfc3339(now_ms() - 1000 + i)) for i in range(100)]
    texts = [json.dumps(r) for r in records]
    texts[at] = bad
    return ("[" + ",".join(texts) + "]").encode(), records


NON_FINITE = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"]
PLACES = {
    "extra field": ('"extra": {}', ["extra"]),
    "nested in details": ('"details": {{"a": [1, {{"b": {}}}]}}', ["details", "a", 1, "b"]),
    "known field": ('"cpu_ratio": {}', ["cpu_ratio"]),
}


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize("place", list(PLACES))
def test_a_number_that_is_not_finite_is_refused_anywhere_in_a_record(client, number, place):
    template, loc = PLACES[place]
    bad = record(id="bad-one")
    text = json.dumps(bad)[:-1] + ", " + template.format(number) + "}"
    if place == "known field":
        del bad["cpu_ratio"]
        text = json.dumps(bad)[:-1] + ", " + template.format(number) + "}"
    body, records = batch_of_100_with(text)
    r = client.post("/logs", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["received"], answer["stored"], answer["duplicates"]) == (100, 99, 0)
    [refused] = answer["rejected"]
    assert (refused["index"], refused["id"]) == (42, "bad-one")
    assert refused["errors"] == [
        {"type": "finite_number", "loc": loc, "msg": "Input should be a finite number"}
    ]
    assert refused["error"] == ".".join(map(str, loc)) + ": Input should be a finite number"
    ids = {rec["id"] for rec in exported(client)}
    assert ids == {rec["id"] for i, rec in enumerate(records) if i != 42}
    # The same record alone is a 422 naming the field; nothing stored.
    alone = client.post("/logs", content=text.encode(), headers=JSON)
    assert alone.status_code == 422
    assert alone.json()["detail"][0]["loc"] == ["body", *loc]
    assert len(exported(client)) == 99


def test_the_answer_has_the_shape_gestors_shipper_reads(client):
    """src/ship/shipper.rs `rejected_records`: each entry's `id` (or `#index`)
    and its `errors`; a record with no text id is named by its index."""
    batch: list[Any] = [record(), record(cpu_ratio=2.5, id="r-1"), 7, {"id": 5}, record()]
    answer = client.post("/logs", json=batch).json()
    assert (answer["received"], answer["stored"], answer["duplicates"]) == (5, 2, 0)
    rejected = answer["rejected"]
    assert [(x["index"], x["id"]) for x in rejected] == [(1, "r-1"), (2, None), (3, None)]
    assert rejected[0]["errors"][0] == {
        "type": "less_than_equal",
        "loc": ["cpu_ratio"],
        "msg": "Input should be less than or equal to 1",
        "input": 2.5,
    }
    assert rejected[0]["error"] == "cpu_ratio: Input should be less than or equal to 1"
    assert rejected[1]["errors"][0]["msg"] == "expected a record (an object)"
    for x in rejected:
        assert set(x) == {"index", "id", "errors", "error"}


def test_a_retried_batch_stores_nothing_twice_and_refuses_the_same_record(client):
    batch = [record() for _ in range(5)]
    batch[2]["memory_bytes"] = -1
    first = client.post("/logs", json=batch).json()
    again = client.post("/logs", json=batch).json()
    assert (first["stored"], first["duplicates"]) == (4, 0)
    assert (again["stored"], again["duplicates"]) == (0, 4)
    assert [x["index"] for x in first["rejected"]] == [x["index"] for x in again["rejected"]] == [2]


def test_an_answer_with_nothing_refused_has_no_rejected_list(client):
    assert client.post("/logs", json=[record()]).json() == {
        "received": 1,
        "stored": 1,
        "duplicates": 0,
    }


def test_a_batch_of_only_bad_records_stores_nothing(client):
    r = client.post("/logs", content=b'[1, [], {"x": Infinity}]', headers=JSON)
    assert r.status_code == 200
    answer = r.json()
    assert (answer["received"], answer["stored"]) == (3, 0)
    assert [x["index"] for x in answer["rejected"]] == [0, 1, 2]
    assert exported(client) == []


def read_records_event(lines, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    event = None
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "records":
            return strict_json(line.split(":", 1)[1])
    raise TimeoutError("no `records` event")


@pytest.mark.slow
def test_drill_one_bad_record_in_100_and_the_page_and_export_still_work(tmp_path: Path):
    """The issue's drill on a real server: a batch of 100 with one invalid
    record stores 99 and names 1; a record with 1e999 in an extra field is
    refused; the live stream, the live page in Chromium and the export work."""
    with Server(tmp_path / "data") as server:
        bad = record(id="one-bad", cpu_ratio=7)
        body, records = batch_of_100_with(json.dumps(bad), at=10)
        with httpx.stream("GET", server.url + "/events", timeout=10) as stream:
            lines = stream.iter_lines()
            r = httpx.post(server.url + "/logs", content=body, headers=JSON, timeout=30)
            assert r.status_code == 200
            answer = r.json()
            assert (answer["stored"], [x["id"] for x in answer["rejected"]]) == (99, ["one-bad"])
            pushed = read_records_event(lines, timeout=5)
            assert len(pushed["records"]) == 99

        huge = json.dumps(record(id="huge-extra"))[:-1] + ', "gauge": 1e999}'
        body, _ = batch_of_100_with(huge, at=0)
        answer = httpx.post(server.url + "/logs", content=body, headers=JSON, timeout=30).json()
        assert [(x["id"], x["errors"][0]["loc"]) for x in answer["rejected"]] == [
            ("huge-extra", ["gauge"])
        ]
        assert answer["stored"] == 99

        lines = exported(server.url)
        assert len(lines) == 198
        assert {"one-bad", "huge-extra"}.isdisjoint(x["id"] for x in lines)
        assert records[0]["id"] in {x["id"] for x in lines}
        page = httpx.get(server.url + "/logs?limit=1000", timeout=10)
        assert strict_json(page.text)["count"] == 198

        with Browser() as browser:
            browser.navigate(server.url + "/")
            browser.wait_for("document.body.dataset.live === 'connected'", timeout=20)
            browser.wait_for("document.querySelectorAll('#rows tr').length === 198", timeout=10)
            late = record(time=rfc3339(now_ms()), reason="after the refusals")
            assert httpx.post(server.url + "/logs", json=[late]).status_code == 200
            browser.wait_for(f"!!document.querySelector('tr[data-id=\"{late['id']}\"]')", 2)
            browser.wait_for(
                "[...document.querySelectorAll('.graphs img')].every(i => i.naturalWidth >= 320)",
                timeout=30,
            )
            assert browser.exceptions() == []
