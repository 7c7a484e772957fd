"""POST /logs: good records, bad records, idempotency, the body limit, the token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TOKEN, make_client
from tests.factory import record

JSON = {"content-type": "application/json"}


def all_ids(client) -> list[str]:
    lines = client.get("/logs/export").text.splitlines()
    return [json.loads(line)["id"] for line in lines]


def test_one_record_is_stored(client):
    rec = record()
    r = client.post("/logs", json=rec)
    assert r.status_code == 200
    assert r.json() == {"received": 1, "stored": 1, "duplicates": 0}
    assert all_ids(client) == [rec["id"]]


def test_batch_is_stored_and_a_retry_adds_nothing(client):
    batch = [record(cycle=i) for i in range(50)]
    first = client.post("/logs", json=batch)
    assert first.json() == {"received": 50, "stored": 50, "duplicates": 0}
    again = client.post("/logs", json=batch)
    assert again.status_code == 200
    assert again.json() == {"received": 50, "stored": 0, "duplicates": 50}
    ids = all_ids(client)
    assert sorted(ids) == sorted(r["id"] for r in batch)
    assert len(ids) == len(set(ids))


def test_partly_new_batch_stores_only_new_records(client):
    old = [record() for _ in range(3)]
    client.post("/logs", json=old)
    new = [record() for _ in range(2)]
    r = client.post("/logs", json=old + new)
    assert r.json() == {"received": 5, "stored": 2, "duplicates": 3}


def test_same_id_twice_in_one_batch_counts_once(client):
    rec = record()
    r = client.post("/logs", json=[rec, dict(rec)])
    assert r.json() == {"received": 2, "stored": 1, "duplicates": 1}


def test_empty_batch_is_fine(client):
    r = client.post("/logs", json=[])
    assert r.status_code == 200
    assert r.json() == {"received": 0, "stored": 0, "duplicates": 0}


def test_unknown_fields_and_nulls_are_kept_whole(client):
    rec = record(
        event="cycle",
        container_id=None,
        container_name=None,
        container_type=None,
        cpu_ratio=None,
        future_field={"nested": [1, 2.5, "x", None, True]},
        details={"containers": 12, "kills": 3, "source": "userspace", "héllo": "wörld ✓"},
    )
    assert client.post("/logs", json=rec).status_code == 200
    exported = [json.loads(line) for line in client.get("/logs/export").text.splitlines()]
    assert exported == [rec]
    listed = client.get("/logs").json()["items"]
    assert listed == [rec]


def test_minimal_record_with_only_required_fields(client):
    rec = {"id": "x1", "time": "2026-11-29T01:23:45Z", "host": "h", "cycle": 0, "event": "error"}
    assert client.post("/logs", json=rec).json()["stored"] == 1
    assert client.get("/logs").json()["items"] == [rec]


def test_every_event_and_type_is_accepted(client):
    events = [
        "cycle",
        "keep",
        "kill",
        "would_kill",
        "kill_failed",
        "remove",
        "would_remove",
        "remove_failed",
        "error",
        "intent",
        "kill_skipped",
        "unmeasured",
    ]
    types = ["cpu", "ram", "io", "disk", "unknown", None]
    batch = [record(event=e, container_type=t) for e in events for t in types]
    assert client.post("/logs", json=batch).json()["stored"] == len(batch)


def test_time_zones_are_normalised_for_ordering(client):
    early = record(time="2026-11-29T03:00:00.000+02:00")  # 01:00 UTC
    late = record(time="2026-11-29T01:30:00.000Z")
    client.post("/logs", json=[late, early])
    items = client.get("/logs").json()["items"]
    assert [i["id"] for i in items] == [late["id"], early["id"]]
    # The record itself is kept as sent.
    assert items[1]["time"] == "2026-11-29T03:00:00.000+02:00"


BAD_FIELDS = [
    ("id", None, "missing"),
    ("id", "", "string_too_short"),
    ("id", "has space", "string_pattern_mismatch"),
    ("id", 12, "string_type"),
    ("time", None, "missing"),
    ("time", "2026-11-29T01:23:45", "timezone_aware"),
    ("time", "yesterday", "datetime_from_date_parsing"),
    ("time", 1764379425, "value_error"),
    ("time", "0001-01-01T00:00:00+23:59", "value_error"),
    ("time", "1969-12-31T23:59:59.999Z", "value_error"),
    ("time", "9000-01-01T00:00:00Z", "value_error"),
    ("host", None, "missing"),
    ("cycle", -1, "greater_than_equal"),
    ("cycle", "12", "int_type"),
    ("cycle", 1.5, "int_type"),
    ("cycle", True, "int_type"),
    ("cycle", 2**64, "less_than_equal"),
    ("event", "explode", "literal_error"),
    ("event", None, "missing"),
    ("container_id", "not-hex", "string_pattern_mismatch"),
    ("container_name", "x" * 300, "string_too_long"),
    ("container_type", "gpu", "literal_error"),
    ("cpu_ratio", 1.5, "less_than_equal"),
    ("cpu_ratio", -0.1, "greater_than_equal"),
    ("cpu_ratio", "0.5", "float_type"),
    ("cpu_cores", -1, "greater_than_equal"),
    ("memory_bytes", -5, "greater_than_equal"),
    ("memory_bytes", 1.5, "int_type"),
    ("memory_ratio", 2, "less_than_equal"),
    ("disk_write_bytes_per_second", -3.0, "greater_than_equal"),
    ("io_read_chars_per_second", [], "float_type"),
    ("reason", 5, "string_type"),
    ("details", [1, 2], "model_type"),
]


@pytest.mark.parametrize(("field", "value", "kind"), BAD_FIELDS)
def test_bad_field_is_a_422_naming_it(client, field, value, kind):
    rec = record()
    if value is None and kind == "missing":
        del rec[field]
    else:
        rec[field] = value
    r = client.post("/logs", json=rec)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert {"loc": ["body", field], "type": kind} in [
        {"loc": e["loc"], "type": e["type"]} for e in errors
    ], errors
    assert all_ids(client) == []


def test_bad_record_in_a_batch_is_named_and_the_others_are_stored(client):
    batch = [record(), record(cpu_ratio=3), record()]
    r = client.post("/logs", json=batch)
    assert r.status_code == 200
    answer = r.json()
    assert (answer["received"], answer["stored"], answer["duplicates"]) == (3, 2, 0)
    [refused] = answer["rejected"]
    assert (refused["index"], refused["id"]) == (1, batch[1]["id"])
    assert refused["errors"][0]["loc"] == ["cpu_ratio"]
    assert sorted(all_ids(client)) == sorted([batch[0]["id"], batch[2]["id"]])


def test_many_bad_records_report_a_bounded_number_of_errors(client):
    r = client.post("/logs", json=[{"bad": i} for i in range(500)])
    assert r.status_code == 200
    rejected = r.json()["rejected"]
    assert [x["index"] for x in rejected] == list(range(500))
    assert all(1 <= len(x["errors"]) <= 5 for x in rejected)
    one = client.post("/logs", json={f"bad{i}": i for i in range(500)})
    assert one.status_code == 422
    assert 1 <= len(one.json()["detail"]) <= 20


BAD_BODIES = [
    b"",
    b"   ",
    b"{",
    b"not json",
    b"null",
    b"42",
    b'"a string"',
    b'{"id": NaN}',
    b'{"x": Infinity}',
    b'{"x": 1e999}',
    b"[" * 5000 + b"]" * 5000,
    b'{"id": "\\ud800"}',
    b"\xff\xfe\x00",
    b'{"a": 1} trailing',
    b"1" * 6000,
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_malformed_body_is_a_422_never_a_500(client, body):
    r = client.post("/logs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "body"


def test_record_with_nan_in_details_is_refused(client):
    body = json.dumps(record(details={"x": float("nan")})).encode()
    assert client.post("/logs", content=body, headers=JSON).status_code == 422


def test_body_over_the_limit_is_a_413_by_content_length(tmp_path: Path):
    with make_client(tmp_path, max_body_bytes=2048) as c:
        small = [record()]
        assert c.post("/logs", json=small).status_code == 200
        big = json.dumps([record() for _ in range(10)]).encode()
        assert len(big) > 2048
        r = c.post("/logs", content=big, headers=JSON)
        assert r.status_code == 413
        assert "2048" in r.json()["detail"]
        assert len(all_ids(c)) == 1


def test_streamed_body_over_the_limit_is_a_413(tmp_path: Path):
    def chunks():
        yield b"["
        for i in range(20):
            yield (b"," if i else b"") + json.dumps(record()).encode()
        yield b"]"

    with make_client(tmp_path, max_body_bytes=2048) as c:
        r = c.post("/logs", content=chunks(), headers=JSON)  # chunked: no Content-Length
        assert r.status_code == 413
        assert all_ids(c) == []


def test_body_exactly_at_the_limit_is_accepted(tmp_path: Path):
    body = json.dumps(record()).encode()
    with make_client(tmp_path, max_body_bytes=max(len(body), 1024)) as c:
        padded = body + b" " * (max(len(body), 1024) - len(body))
        assert c.post("/logs", content=padded, headers=JSON).status_code == 200


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", TOKEN],
)
def test_write_without_the_right_token_is_a_401(token_client, header):
    headers = {"authorization": header} if header else {}
    r = token_client.post("/logs", json=record(), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert token_client.get("/logs").json()["count"] == 0


def test_write_with_the_token_is_stored(token_client):
    r = token_client.post("/logs", json=record(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert r.json()["stored"] == 1


def test_token_is_checked_before_the_body_is_read(tmp_path: Path):
    with make_client(tmp_path, token=TOKEN, max_body_bytes=1024) as c:
        r = c.post("/logs", content=b"x" * 5000)
        assert r.status_code == 401


def test_reads_do_not_need_the_token(token_client):
    for path in ("/logs", "/logs/export", "/healthz", "/stats", "/graphs/cpu.png", "/"):
        assert token_client.get(path).status_code == 200, path
    assert token_client.get("/healthz").json()["token_required"] is True


def test_unicode_line_separators_stay_inside_one_exported_line(client):
    rec = record(reason="a\u2028b\u2029c\x85d\nnewline", container_name="名前")
    client.post("/logs", json=rec)
    lines = client.get("/logs/export").text.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == rec
