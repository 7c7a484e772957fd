"""Inputs that used to give a 500 (issue 12): each is now a 4xx, and nothing is lost.

gestor retries every 5xx, so a batch that makes the service fail would block
its queue forever; a 4xx is final and it moves on.
"""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest

from tests.factory import record, rfc3339, simulate

T0 = 1_795_000_000_000
HOUR = 3_600_000
MAX_INT = 2**63 - 1
JSON = {"content-type": "application/json"}


def cursor_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "raw",
    [
        b'[100000000000000000000000000000, "x"]',  # beyond SQLite's 64-bit integers
        b'[-100000000000000000000000000000, "x"]',
        b'[9223372036854775808, "x"]',
        b'[1, "\\ud800"]',  # a lone surrogate cannot be bound as text
        b'[1, "a\\udfffb"]',
        b'[1, ""]',
        b'[1, "' + b"x" * 200 + b'"]',
    ],
)
def test_a_cursor_that_decodes_to_something_we_never_issued_is_a_422(client, raw):
    client.post("/logs", json=[record()])
    r = client.get("/logs", params={"cursor": cursor_of(raw)})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_memory_sums_beyond_two_to_the_63_are_stored_and_drawn(client):
    # Two containers of one type in one cycle whose memory adds up beyond 2^63,
    # and a single value at the top of the range.
    big = [
        record(cycle=1, container_type="ram", memory_bytes=2**62 + 1, time=rfc3339(T0)),
        record(cycle=1, container_type="ram", memory_bytes=2**62 + 1, time=rfc3339(T0)),
        record(cycle=2, container_type="cpu", memory_bytes=MAX_INT, time=rfc3339(T0 + 10_000)),
    ]
    r = client.post("/logs", json=big)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 3
    # A later batch adds to the same (host, cycle, type) summary row.
    more = [record(cycle=2, container_type="cpu", memory_bytes=MAX_INT, time=rfc3339(T0 + 10_000))]
    assert client.post("/logs", json=more).status_code == 200
    window = {"since": rfc3339(T0 - 60_000), "until": rfc3339(T0 + 60_000)}
    for kind in ("memory", "cpu", "kills"):
        png = client.get(f"/graphs/{kind}.png", params=window)
        assert png.status_code == 200, (kind, png.text)
    assert client.get("/healthz").status_code == 200


def test_memory_bytes_beyond_two_to_the_63_is_a_422(client):
    r = client.post("/logs", json=record(memory_bytes=MAX_INT + 1))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "memory_bytes"]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "8999-12-31T00:00:00Z", "range": "999999w"},  # ends past year 9999
        {"since": "8999-12-31T00:00:00Z", "range": "52w"},  # ends in 9000: past the range
        {"since": "8999-12-31T23:00:00Z", "range": "2h"},
    ],
)
def test_a_graph_window_ending_past_the_time_range_is_a_422(client, params):
    client.post("/logs", json=[record(event="kill")])
    for kind in ("memory", "cpu", "kills"):
        r = client.get(f"/graphs/{kind}.png", params=params)
        assert r.status_code == 422, (kind, r.text)
        assert r.json()["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize("field", ["host_cpu_ratio", "host_memory_ratio"])
@pytest.mark.parametrize("value", [1e308, -1e308, 1.5, -0.1, "0.5", True, [0.5]])
def test_a_host_ratio_outside_0_1_in_a_cycle_record_is_a_422(client, field, value):
    rec = record(event="cycle", container_type=None, details={field: value, "containers": 3})
    r = client.post("/logs", json=rec)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "details", field]
    assert client.get("/logs").json()["count"] == 0


def test_host_ratios_within_0_1_or_null_are_fine(client):
    ok = [
        record(event="cycle", details={"host_cpu_ratio": 0, "host_memory_ratio": 1}),
        record(event="cycle", details={"host_cpu_ratio": 0.5, "host_memory_ratio": None}),
        record(event="cycle", details={"other": 1e308}),
    ]
    assert client.post("/logs", json=ok).json()["stored"] == 3


def test_a_stored_huge_host_ratio_does_not_break_the_cpu_graph(client):
    """A database written before the check may hold such values: they are not drawn."""
    recs = simulate(T0, 30, per_type=1, seed=4)
    assert client.post("/logs", json=recs).status_code == 200
    db = client.app.state.db
    conn = sqlite3.connect(db.path)
    with conn:
        for value, cycle in ((1e308, 7), (-5, 8)):
            conn.execute(
                "UPDATE logs SET host_cpu_ratio = ?1,"
                " record = json_set(record, '$.details.host_cpu_ratio', ?1)"
                " WHERE event = 'cycle' AND cycle = ?2",
                (value, cycle),
            )
    conn.close()
    window = {"since": rfc3339(T0), "until": rfc3339(T0 + HOUR)}
    r = client.get("/graphs/cpu.png", params=window)
    assert r.status_code == 200, r.text
    assert r.content[:4] == b"\x89PNG"


def test_a_batch_with_a_bad_record_loses_nothing_once_fixed(client):
    good = [record() for _ in range(3)]
    bad = record(details={"host_cpu_ratio": 1e308})
    r = client.post("/logs", json=[*good, bad])
    assert r.status_code == 200
    assert [x["index"] for x in r.json()["rejected"]] == [3]
    assert client.get("/logs").json()["count"] == 3
    bad["details"] = {"host_cpu_ratio": 0.25}
    again = client.post("/logs", json=[*good, bad]).json()
    assert again == {"received": 4, "stored": 1, "duplicates": 3}


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "json",
    ],
)
def test_writes_need_application_json(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps(record()).encode()
    r = client.post("/logs", content=body, headers=headers)
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["detail"]
    assert client.get("/logs").json()["count"] == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON"],
)
def test_application_json_with_or_without_parameters_is_accepted(client, content_type):
    body = json.dumps(record()).encode()
    r = client.post("/logs", content=body, headers={"content-type": content_type})
    assert r.status_code == 200, r.text
