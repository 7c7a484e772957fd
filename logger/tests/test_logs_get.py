"""GET /logs (filters, pagination, order), GET /logs/export, /healthz and /stats."""

from __future__ import annotations

import base64
import json

import pytest

from tests.factory import record, rfc3339

T0 = 1_795_000_000_000  # 2026-11-18T11:06:40Z, epoch ms


def seed(client, records) -> None:
    for start in range(0, len(records), 500):
        r = client.post("/logs", json=records[start : start + 500])
        assert r.status_code == 200, r.text


@pytest.fixture
def seeded(client):
    """10 records per type, one per second, plus a kill and a cycle record."""
    recs = []
    for i in range(40):
        kind = ("cpu", "ram", "io", "disk")[i % 4]
        recs.append(
            record(
                id=f"rec-{i:03d}",
                time=rfc3339(T0 + i * 1000),
                container_type=kind,
                container_name=f"{kind}-{i:03d}",
                container_id=f"{i:064x}",
                host="alpha" if i < 20 else "beta",
            )
        )
    recs.append(record(id="kill-1", time=rfc3339(T0 + 50_000), event="kill", container_type="ram"))
    recs.append(
        record(
            id="cycle-1",
            time=rfc3339(T0 + 60_000),
            event="cycle",
            container_id=None,
            container_name=None,
            container_type=None,
        )
    )
    seed(client, recs)
    return client


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_newest_first_with_default_limit(seeded):
    got = ids(seeded.get("/logs"))
    assert got[:3] == ["cycle-1", "kill-1", "rec-039"]
    assert len(got) == 42


def test_filter_by_container_name_id_and_short_id(seeded):
    assert ids(seeded.get("/logs", params={"container": "ram-005"})) == ["rec-005"]
    full = f"{7:064x}"
    assert ids(seeded.get("/logs", params={"container": full})) == ["rec-007"]
    # A 12-digit prefix matches every id that starts with it (all 40 here start with zeros);
    # a 12-digit suffix is no prefix and matches nothing.
    assert len(ids(seeded.get("/logs", params={"container": full[:12]}))) == 40
    assert ids(seeded.get("/logs", params={"container": full[-12:]})) == []
    assert ids(seeded.get("/logs", params={"container": "nope"})) == []


def test_filter_by_short_id_prefix(client):
    cid = "abcdef0123456789" * 4
    seed(client, [record(id="a", container_id=cid), record(id="b")])
    assert ids(client.get("/logs", params={"container": cid[:12]})) == ["a"]


def test_filter_by_type_and_event(seeded):
    got = ids(seeded.get("/logs", params={"type": "io"}))
    assert len(got) == 10
    assert all(int(i[-3:]) % 4 == 2 for i in got)
    both = ids(seeded.get("/logs", params=[("type", "io"), ("type", "disk")]))
    assert len(both) == 20
    assert ids(seeded.get("/logs", params={"event": "kill"})) == ["kill-1"]
    assert ids(seeded.get("/logs", params=[("event", "kill"), ("event", "cycle")])) == [
        "cycle-1",
        "kill-1",
    ]
    assert ids(seeded.get("/logs", params={"event": "kill", "type": "cpu"})) == []


def test_filter_by_host(seeded):
    assert len(ids(seeded.get("/logs", params={"host": "beta"}))) == 20


def test_filter_by_time_range_rfc3339_and_unix(seeded):
    since = rfc3339(T0 + 10_000)
    until = rfc3339(T0 + 12_000)
    got = ids(seeded.get("/logs", params={"since": since, "until": until}))
    assert got == ["rec-012", "rec-011", "rec-010"]  # both ends inclusive
    got = ids(seeded.get("/logs", params={"since": (T0 + 38_000) / 1000, "event": "keep"}))
    assert got == ["rec-039", "rec-038"]
    got = ids(seeded.get("/logs", params={"until": "2026-11-18T12:06:40.500+01:00"}))
    assert got == ["rec-000"]


def test_offset_pagination(seeded):
    first = ids(seeded.get("/logs", params={"limit": 5}))
    second = ids(seeded.get("/logs", params={"limit": 5, "offset": 5}))
    everything = ids(seeded.get("/logs", params={"limit": 1000}))
    assert first + second == everything[:10]


def test_cursor_pagination_visits_each_record_once_even_with_equal_times(client):
    same_time = rfc3339(T0)
    recs = [record(id=f"t{i:02d}", time=same_time) for i in range(25)]
    recs += [record(id=f"u{i:02d}", time=rfc3339(T0 + i)) for i in range(25)]
    seed(client, recs)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = client.get("/logs", params=params).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert pages == 8
    assert len(seen) == 50
    assert set(seen) == {r["id"] for r in recs}
    assert seen == ids(client.get("/logs", params={"limit": 50}))


def test_last_page_has_no_cursor(seeded):
    page = seeded.get("/logs", params={"limit": 1000}).json()
    assert page["next_cursor"] is None
    assert page["count"] == 42


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"type": "gpu"}, "type"),
        ({"event": "boom"}, "event"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2026-11-29T01:00:00"}, "until"),
        ({"since": "nan"}, "since"),
        ({"until": "1e400"}, "until"),
        ({"since": "-1e300"}, "since"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[1]").decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'["a", "b"]').decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "cursor"),
        ({"cursor": "x" * 2000}, "cursor"),
        ({"container": "x" * 300}, "container"),
    ],
)
def test_bad_query_is_a_422_naming_the_parameter(seeded, params, field):
    r = seeded.get("/logs", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["query", field]


def test_export_is_json_lines_oldest_first(seeded):
    r = seeded.get("/logs/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = r.text.splitlines()
    assert len(lines) == 42
    records = [json.loads(line) for line in lines]
    assert records[0]["id"] == "rec-000"
    assert records[-1]["id"] == "cycle-1"


def test_export_applies_filters(seeded):
    r = seeded.get("/logs/export", params={"type": "ram", "event": "kill"})
    assert [json.loads(line)["id"] for line in r.text.splitlines()] == ["kill-1"]
    assert seeded.get("/logs/export", params={"since": "garbage"}).status_code == 422


def test_export_streams_many_chunks(client):
    recs = [record(id=f"r{i:05d}", time=rfc3339(T0 + i)) for i in range(4500)]
    seed(client, recs)
    with client.stream("GET", "/logs/export") as r:
        got = [json.loads(line)["id"] for line in r.iter_lines() if line]
    assert got == [x["id"] for x in recs]


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["records"] == 0
    assert body["token_required"] is False


def test_stats_count_what_was_stored(seeded):
    s = seeded.get("/stats").json()
    assert s["total"] == 42
    assert s["by_event"] == {"keep": 40, "kill": 1, "cycle": 1}
    assert s["kills_by_type"] == {"ram": 1}
    assert s["last_cycle"]["id"] == "cycle-1"
    assert s["last_time"] == rfc3339(T0 + 60_000)
    # Duplicates change nothing.
    seeded.post("/logs", json=[record(id="kill-1", event="kill")])
    assert seeded.get("/stats").json()["total"] == 42


def test_counters_survive_a_restart(tmp_path):
    from tests.conftest import make_client

    with make_client(tmp_path) as c:
        seed(c, [record(event="kill", container_type="io"), record(event="cycle")])
    with make_client(tmp_path) as c:
        s = c.get("/stats").json()
        assert s["total"] == 2
        assert s["kills_by_type"] == {"io": 1}
        assert c.get("/healthz").json()["records"] == 2


def test_unknown_path_is_a_404(client):
    assert client.get("/nope").status_code == 404
    assert client.put("/logs").status_code == 405


def test_last_cycle_is_the_newest_cycle_record_even_when_others_are_newer(client):
    cycle = record(id="c1", event="cycle", time=rfc3339(T0 + 10))
    older_cycle = record(id="c0", event="cycle", time=rfc3339(T0))
    keep = record(id="k1", time=rfc3339(T0 + 20))
    client.post("/logs", json=[cycle, keep])
    client.post("/logs", json=[older_cycle])
    stats = client.get("/stats").json()
    assert stats["last_cycle"]["id"] == "c1"
    assert stats["last_time"] == rfc3339(T0 + 20)


def test_per_host_totals(client):
    t0 = 1_795_000_000_000
    recs = [
        record(event="cycle", host="node-a", time=rfc3339(t0)),
        record(event="cycle", host="node-a", time=rfc3339(t0 + 10_000)),
        record(event="kill", host="node-a", time=rfc3339(t0 + 10_000)),
        record(event="kill_failed", host="node-a", time=rfc3339(t0 + 20_000)),
        record(event="cycle", host="node-b", time=rfc3339(t0 + 30_000)),
        record(event="error", host="node-b", time=rfc3339(t0 + 40_000)),
    ]
    assert client.post("/logs", json=recs).status_code == 200
    body = client.get("/logs/hosts").json()
    assert body["since"] is None
    assert body["hosts"] == [
        {
            "host": "node-a",
            "records": 4,
            "cycles": 2,
            "kills": 1,
            "kill_failures": 1,
            "errors": 0,
            "last_time": rfc3339(t0 + 20_000),
        },
        {
            "host": "node-b",
            "records": 2,
            "cycles": 1,
            "kills": 0,
            "kill_failures": 0,
            "errors": 1,
            "last_time": rfc3339(t0 + 40_000),
        },
    ]
    # A window: only what was recorded since then.
    later = client.get("/logs/hosts", params={"since": rfc3339(t0 + 25_000)}).json()
    assert [(h["host"], h["records"]) for h in later["hosts"]] == [("node-b", 2)]
    assert client.get("/logs/hosts", params={"since": "yesterday"}).status_code == 422
