"""POST /alerts: Alertmanager's webhook notifications stored as records of
their own kind (event `alert`), shown by GET /logs, /stats and the live page."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TOKEN, make_client
from tests.factory import now_ms, record, rfc3339

JSON = {"content-type": "application/json"}
AUTH = {"authorization": f"Bearer {TOKEN}", **JSON}


def alert(
    status: str = "firing",
    name: str = "GestorDown",
    host: str | None = "node-1",
    starts_ms: int | None = None,
    ends: str = "0001-01-01T00:00:00Z",
    fingerprint: str = "4f1c2a7e9b0d3e65",
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager 0.25-0.27 sends it."""
    all_labels = {"alertname": name, "job": "gestor", "instance": "gestor:9797"}
    all_labels["severity"] = "critical"
    if host is not None:
        all_labels["host"] = host
    all_labels.update(labels)
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {
            "summary": f"gestor on {host} does not answer scrapes",
            "description": "Prometheus has failed to scrape it for 1 minute.",
        },
        "startsAt": rfc3339(starts_ms if starts_ms is not None else now_ms() - 60_000),
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22gestor%22%7D+%3D%3D+0",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """A webhook body (version 4), as Alertmanager POSTs it."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "receiver": "log-service",
        "status": status or ("firing" if firing else "resolved"),
        "alerts": list(alerts),
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="GestorDown"}',
        "truncatedAlerts": 0,
    }


def alert_records(client) -> list[dict[str, Any]]:
    r = client.get("/logs", params={"event": "alert"})
    assert r.status_code == 200
    return r.json()["items"]


def metric(client, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_a_firing_alert_is_stored_as_an_alert_record_and_fires_on_the_stats(client):
    starts = now_ms() - 90_000
    body = notification(alert(starts_ms=starts))
    r = client.post("/alerts", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 1, "stored": 1, "duplicates": 0}
    [rec] = alert_records(client)
    assert rec["event"] == "alert"
    assert rec["time"] == rfc3339(starts)
    assert rec["host"] == "node-1"
    assert rec["reason"] == "GestorDown firing: gestor on node-1 does not answer scrapes"
    assert rec["alert"]["status"] == "firing"
    assert rec["alert"]["name"] == "GestorDown"
    assert rec["alert"]["severity"] == "critical"
    assert rec["alert"]["ends_at"] is None  # Go's zero time: no end yet
    assert rec["alert"]["labels"]["instance"] == "gestor:9797"
    assert rec["alert"]["fingerprint"] == "4f1c2a7e9b0d3e65"
    # GET /logs lists it with everything else; the export has it too.
    assert [i["id"] for i in client.get("/logs").json()["items"]] == [rec["id"]]
    assert json.loads(client.get("/logs/export").text)["id"] == rec["id"]
    stats = client.get("/stats").json()
    assert stats["by_event"] == {"alert": 1}
    assert [(a["name"], a["host"], a["severity"]) for a in stats["alerts_firing"]] == [
        ("GestorDown", "node-1", "critical")
    ]
    assert stats["alerts_firing"][0]["since"] == rfc3339(starts)


def test_repeats_and_retries_store_nothing_new_and_resolved_ends_the_alert(client):
    starts = now_ms() - 120_000
    firing = notification(alert(starts_ms=starts))
    assert client.post("/alerts", json=firing).json()["stored"] == 1
    # Alertmanager repeats a firing alert in later notifications (endsAt moves).
    again = copy.deepcopy(firing)
    again["alerts"][0]["endsAt"] = rfc3339(now_ms() + 240_000)
    assert client.post("/alerts", json=again).json() == {
        "received": 1,
        "stored": 0,
        "duplicates": 1,
    }
    ended = now_ms() - 5_000
    resolved = notification(alert("resolved", starts_ms=starts, ends=rfc3339(ended)))
    assert client.post("/alerts", json=resolved).json()["stored"] == 1
    assert client.post("/alerts", json=resolved).json()["duplicates"] == 1
    records = alert_records(client)
    assert [(r["alert"]["status"], r["time"]) for r in records] == [
        ("resolved", rfc3339(ended)),
        ("firing", rfc3339(starts)),
    ]
    assert client.get("/stats").json()["alerts_firing"] == []
    # A late retry of the old firing notification does not bring it back...
    late = copy.deepcopy(firing)
    late["alerts"][0]["endsAt"] = rfc3339(now_ms() + 60_000)
    late["alerts"][0]["fingerprint"] = "4f1c2a7e9b0d3e65"
    assert client.post("/alerts", json=late).status_code == 200
    assert client.get("/stats").json()["alerts_firing"] == []
    # ...while a new occurrence (a later startsAt) fires again.
    anew = notification(alert(starts_ms=now_ms() - 1_000))
    assert client.post("/alerts", json=anew).json()["stored"] == 1
    assert [a["name"] for a in client.get("/stats").json()["alerts_firing"]] == ["GestorDown"]


def test_alerts_without_host_or_fingerprint_and_several_in_one_notification(client):
    a = alert(name="GestorLoggerDown", host=None, fingerprint="0")
    del a["fingerprint"]
    b = alert(name="GestorCycleStalled", host="node-2", fingerprint="aa", severity="warning")
    r = client.post("/alerts", json=notification(a, b))
    assert r.json() == {"received": 2, "stored": 2, "duplicates": 0}
    by_name = {r["alert"]["name"]: r for r in alert_records(client)}
    assert "host" not in by_name["GestorLoggerDown"]
    assert len(by_name["GestorLoggerDown"]["alert"]["fingerprint"]) == 16
    assert client.get("/logs", params={"host": "node-2", "event": "alert"}).json()["count"] == 1
    firing = client.get("/stats").json()["alerts_firing"]
    # Most severe first.
    assert [f["name"] for f in firing] == ["GestorLoggerDown", "GestorCycleStalled"]


def test_alerts_are_not_records_from_gestor(client):
    """They do not move the host's last record (GestorRecordsStopped watches
    it) nor the count of gestor's records (GestorLoggerReceivesNothing)."""
    client.post("/logs", json=record(host="node-1"))
    last = "gestor_logger_last_record_received_timestamp_seconds"
    before = metric(client, last, host="node-1")
    client.post("/alerts", json=notification(alert(host="node-1")))
    client.post("/alerts", json=notification(alert(host="node-9", fingerprint="b1")))
    assert metric(client, last, host="node-1") == before
    assert metric(client, last, host="node-9") is None
    assert metric(client, "gestor_logger_records_stored_total") == 1
    assert metric(client, "gestor_logger_alerts_stored_total", status="firing") == 2
    assert metric(client, "gestor_logger_alerts_stored_total", status="resolved") == 0
    assert metric(client, "gestor_logger_database_records", event="alert") == 2
    # The graphs still read only gestor's records.
    assert client.get("/graphs/kills.png", params={"range": "1h"}).status_code == 200


def test_firing_alerts_survive_a_restart(tmp_path: Path):
    with make_client(tmp_path) as c:
        c.post("/alerts", json=notification(alert(fingerprint="01")))
        c.post("/alerts", json=notification(alert(name="Other", fingerprint="02")))
        ended = alert("resolved", name="Other", fingerprint="02", ends=rfc3339(now_ms()))
        c.post("/alerts", json=notification(ended))
        want = c.get("/stats").json()["alerts_firing"]
    with make_client(tmp_path) as c:
        assert c.get("/stats").json()["alerts_firing"] == want
        assert [a["fingerprint"] for a in want] == ["01"]


def test_the_token_and_the_content_type_are_required(tmp_path: Path):
    body = notification(alert())
    with make_client(tmp_path, token=TOKEN) as c:
        r = c.post("/alerts", json=body)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        bearer = {"authorization": f"Bearer {TOKEN}"}
        r = c.post("/alerts", content=json.dumps(body), headers=bearer)
        assert r.status_code == 415
        r = c.post(
            "/alerts",
            content=json.dumps(body),
            headers={"authorization": f"Bearer {TOKEN}", "content-type": "text/plain"},
        )
        assert r.status_code == 415
        assert alert_records(c) == []
        assert c.post("/alerts", content=json.dumps(body), headers=AUTH).json()["stored"] == 1
        assert metric(c, "gestor_logger_rejected_requests_total", reason="unauthorized") == 1


def _bad(mutate) -> dict[str, Any]:
    body = notification(alert(), alert(name="Second", fingerprint="0b"))
    mutate(body)
    return body


BAD = {
    "no alertname": (
        lambda b: b["alerts"][1]["labels"].pop("alertname"),
        ["body", "alerts", 1, "labels"],
    ),
    "another version": (lambda b: b.update(version="3"), ["body", "version"]),
    "a number for a time": (
        lambda b: b["alerts"][0].update(startsAt=1700000000),
        ["body", "alerts", 0, "startsAt"],
    ),
    "a time without a zone": (
        lambda b: b["alerts"][0].update(startsAt="2026-11-29T01:02:03"),
        ["body", "alerts", 0, "startsAt"],
    ),
    "a time before 1970": (
        lambda b: b["alerts"][0].update(startsAt="0001-01-01T00:00:00Z"),
        ["body", "alerts", 0, "startsAt"],
    ),
    "resolved without an end": (
        lambda b: b["alerts"][0].update(status="resolved"),
        ["body", "alerts", 0],
    ),
    "an unknown status": (
        lambda b: b["alerts"][0].update(status="pending"),
        ["body", "alerts", 0, "status"],
    ),
    "a label that is not text": (
        lambda b: b["alerts"][0]["labels"].update(port=9797),
        ["body", "alerts", 0, "labels", "port"],
    ),
    "a fingerprint that is not hex": (
        lambda b: b["alerts"][0].update(fingerprint="../x"),
        ["body", "alerts", 0, "fingerprint"],
    ),
    "no alerts list": (lambda b: b.pop("alerts"), ["body", "alerts"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_notifications_get_a_422_naming_the_field_and_store_nothing(client, case):
    mutate, loc = BAD[case]
    r = client.post("/alerts", json=_bad(mutate))
    assert r.status_code == 422, r.text
    assert loc in [e["loc"] for e in r.json()["detail"]], r.json()
    assert alert_records(client) == []
    assert client.get("/stats").json()["alerts_firing"] == []
    assert metric(client, "gestor_logger_rejected_requests_total", reason="invalid_alert") == 1


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b'"x"', b"[1]", b'{"version": "4", "alerts": NaN}']
)
def test_what_is_not_a_notification_is_a_422(client, body):
    r = client.post("/alerts", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "body"
    assert alert_records(client) == []


def test_post_logs_does_not_take_alert_records(client):
    r = client.post("/logs", json=record(event="alert"))
    assert r.status_code == 422
    assert client.get("/logs", params={"event": "alert"}).json()["count"] == 0


def test_retention_deletes_old_alerts_and_keeps_the_counts_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    day = 86_400_000
    with make_client(tmp_path) as c:
        db = c.app.state.db
        insert = db.insert
        # Retention goes by arrival: the first alert arrived two days ago,
        # the cut (the start of today: PostgreSQL drops whole days) falls
        # between the two posts.
        cut = now_ms() // day * day
        monkeypatch.setattr(db, "insert", lambda records: insert(records, cut - 2 * day))
        old = now_ms() - 20 * day
        c.post("/alerts", json=notification(alert(starts_ms=old, fingerprint="0a")))
        monkeypatch.undo()
        c.post("/alerts", json=notification(alert(fingerprint="0c")))
        deleted, _ = db.delete_before(cut)
        assert deleted == 1
        assert c.get("/stats").json()["by_event"] == {"alert": 1}
        assert [r["alert"]["fingerprint"] for r in alert_records(c)] == ["0c"]
