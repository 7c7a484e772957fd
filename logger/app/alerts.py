"""Alert notifications (Alertmanager's webhook, POST /alerts) as records of
their own kind.

Each alert of a notification becomes one record with event ``alert``, stored
in the same table as gestor's records (so ``GET /logs``, the export, the live
page and retention treat it like any record) but never counted as a record
*from gestor*: it updates neither the ``hosts`` table (when a host's records
last arrived, which ``GestorRecordsStopped`` watches) nor the graphs' usage,
nor ``gestor_logger_records_stored_total``.

The record's id is ``alert-<fingerprint>-<startsAt ms>-<status>``: Alertmanager
repeats a firing alert in every notification of its group (and again every
``repeat_interval``), and retries a notification that failed; all of those
are one record, and the resolved notification of the same occurrence is one
more. A new occurrence (the alert fires again later) has a new ``startsAt``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .models import ALERT_EVENT, EPOCH, AlertIn, AlertmanagerWebhookIn, utc_text

SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def _ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def fingerprint_of(labels: dict[str, str]) -> str:
    """Alertmanager sends each alert's fingerprint; for a sender that does
    not, one derived from the labels (16 hex digits, as Alertmanager's)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert, with the attributes the database reads of a record."""

    id: str
    time_ms: int
    host: str | None
    status: str
    starts_ms: int
    fingerprint: str
    name: str
    severity: str | None
    summary: str | None
    event: str = ALERT_EVENT
    run_id: str | None = None
    cycle: int | None = None
    container_id: str | None = None
    container_name: str | None = None
    container_type: str | None = None
    cpu_ratio: float | None = None
    cpu_cores: float | None = None
    memory_bytes: int | None = None
    memory_ratio: float | None = None
    details: None = None

    def firing_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "host": self.host,
            "summary": self.summary,
            "since": utc_text(self.starts_ms),
            "fingerprint": self.fingerprint,
        }


def _record(alert: AlertIn, note: AlertmanagerWebhookIn) -> tuple[AlertRecord, dict[str, Any]]:
    labels = alert.labels
    fingerprint = alert.fingerprint or fingerprint_of(labels)
    starts_ms = _ms(alert.startsAt)
    ends_ms = _ms(alert.endsAt) if alert.endsAt is not None else None
    # A firing alert is dated when it started, a resolved one when it ended.
    time_ms = starts_ms if alert.status == "firing" or ends_ms is None else ends_ms
    name = labels["alertname"]
    summary = alert.annotations.get("summary") or None
    rec = AlertRecord(
        id=f"alert-{fingerprint}-{starts_ms}-{alert.status}",
        time_ms=time_ms,
        host=labels.get("host") or None,
        status=alert.status,
        starts_ms=starts_ms,
        fingerprint=fingerprint,
        name=name,
        severity=labels.get("severity") or None,
        summary=summary,
    )
    raw: dict[str, Any] = {"id": rec.id, "time": utc_text(time_ms)}
    if rec.host is not None:
        raw["host"] = rec.host
    raw["event"] = ALERT_EVENT
    raw["reason"] = f"{name} {alert.status}" + (f": {summary}" if summary else "")
    raw["alert"] = {
        "name": name,
        "status": alert.status,
        "severity": rec.severity,
        "starts_at": utc_text(starts_ms),
        "ends_at": utc_text(ends_ms) if ends_ms is not None else None,
        "fingerprint": fingerprint,
        "labels": dict(labels),
        "annotations": dict(alert.annotations),
        "generator_url": alert.generatorURL,
        "receiver": note.receiver,
        "group_key": note.groupKey,
        "external_url": note.externalURL,
    }
    return rec, raw


def records_of(note: AlertmanagerWebhookIn) -> list[tuple[AlertRecord, dict[str, Any]]]:
    """The records of one notification (a repeated alert in it counts once)."""
    return [_record(alert, note) for alert in note.alerts]


@dataclass
class AlertBoard:
    """Which alerts fire now: per fingerprint, the newest notification.

    Newest is by (startsAt, resolved after firing), not by arrival, so a
    retried old notification that arrives late cannot bring back an alert
    that was resolved."""

    latest: dict[str, tuple[int, int, dict[str, Any]]] = field(default_factory=dict)

    def note(self, rec: AlertRecord) -> None:
        rank = 1 if rec.status == "resolved" else 0
        current = self.latest.get(rec.fingerprint)
        if current is None or (rec.starts_ms, rank) >= current[:2]:
            self.latest[rec.fingerprint] = (rec.starts_ms, rank, rec.firing_info())

    def note_stored(self, raw: dict[str, Any]) -> None:
        """From a stored record's JSON (at start-up)."""
        alert = raw.get("alert") or {}
        try:
            starts = datetime.fromisoformat(str(alert["starts_at"]).replace("Z", "+00:00"))
            rec = AlertRecord(
                id=str(raw["id"]),
                time_ms=0,
                host=raw.get("host"),
                status=str(alert["status"]),
                starts_ms=_ms(starts),
                fingerprint=str(alert["fingerprint"]),
                name=str(alert["name"]),
                severity=alert.get("severity"),
                summary=(alert.get("annotations") or {}).get("summary"),
            )
        except (KeyError, TypeError, ValueError):
            return
        self.note(rec)

    def firing(self) -> list[dict[str, Any]]:
        infos = [info for _, rank, info in self.latest.values() if rank == 0]
        return sorted(
            infos,
            key=lambda i: (SEVERITY_ORDER.get(i["severity"] or "", 9), i["since"], i["name"]),
        )
