"""GET /metrics (issue 12): the log service's own Prometheus metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TOKEN, make_client
from tests.factory import record, rfc3339

T0 = 1_795_000_000_000


def samples(client) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(client, name: str, **labels) -> float:
    return samples(client).get((name, tuple(sorted(labels.items()))), 0.0)


def test_records_stored_and_duplicates_are_counted(client):
    batch = [record(host="alpha", time=rfc3339(T0)), record(host="beta", event="kill")]
    client.post("/logs", json=batch)
    client.post("/logs", json=batch)
    assert value(client, "gestor_logger_records_stored_total") == 2
    assert value(client, "gestor_logger_records_duplicate_total") == 2
    assert value(client, "gestor_logger_database_records", event="keep") == 1
    assert value(client, "gestor_logger_database_records", event="kill") == 1
    received = samples(client)
    hosts = {
        dict(k[1])["host"]
        for k in received
        if k[0] == "gestor_logger_last_record_received_timestamp_seconds"
    }
    assert hosts == {"alpha", "beta"}


def test_rejections_are_counted_by_reason(tmp_path: Path):
    with make_client(tmp_path, token=TOKEN, max_body_bytes=1024) as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        c.post("/logs", json=record())  # no token
        c.post("/logs", content=b"{}", headers={**auth, "content-type": "text/plain"})
        c.post("/logs", content=b"{", headers={**auth, "content-type": "application/json"})
        c.post("/logs", json=record(cpu_ratio=7), headers=auth)
        c.post(
            "/logs",
            content=json.dumps([record()] * 5),
            headers={**auth, "content-type": "application/json"},
        )
        for reason, n in [
            ("unauthorized", 1),
            ("unsupported_media_type", 1),
            ("invalid_json", 1),
            ("invalid_record", 1),
            ("too_large", 1),
        ]:
            assert value(c, "gestor_logger_rejected_requests_total", reason=reason) == n, reason


def test_request_latency_database_size_and_live_clients(client):
    client.post("/logs", json=record())
    client.get("/logs")
    s = samples(client)
    count = s[
        (
            "gestor_logger_request_duration_seconds_count",
            (("code", "200"), ("method", "POST"), ("route", "/logs")),
        )
    ]
    assert count == 1
    assert (
        s[
            (
                "gestor_logger_request_duration_seconds_count",
                (("code", "200"), ("method", "GET"), ("route", "/logs")),
            )
        ]
        == 1
    )
    assert s[("gestor_logger_database_bytes", ())] > 0
    assert s[("gestor_logger_live_clients", ())] == 0
    assert ("gestor_logger_build_info", (("version", "0.1.0"),)) in s


def test_unknown_paths_do_not_make_new_series(client):
    for i in range(20):
        client.get(f"/nope/{i}")
    text = client.get("/metrics").text
    assert "/nope" not in text
    assert len(re.findall(r'route="<unmatched>"', text)) >= 1
