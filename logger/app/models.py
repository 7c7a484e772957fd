"""Pydantic models: what clients send (``*In``) and what the service returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# `would_kill`: a kill gestor decided in --dry-run mode and did not carry out.
# `remove`: a managed container that had stopped by itself (exited, OOM-killed,
# never started) and was removed; `would_remove` its dry-run form.
# `intent`: a kill or removal gestor is about to carry out (its outcome record
# follows, naming the intent in `details.intent`); `kill_skipped`: a kill not
# carried out because its type's keeper was gone; `unmeasured`: a container
# not judged because it has no rate yet or its I/O could not be read.
Event = Literal[
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
ContainerType = Literal["cpu", "ram", "io", "disk", "unknown"]

# Records of their own kind: one per alert notification (POST /alerts), never
# sent by gestor to POST /logs. GET /logs filters on every kind.
ALERT_EVENT = "alert"
StoredEvent = Literal[Event, "alert"]
AlertStatus = Literal["firing", "resolved"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Times the service accepts, as epoch milliseconds: 1970-01-01T00:00:00Z up to
# (not including) 9000-01-01T00:00:00Z. Anything else is a clock gone wrong,
# and it keeps every date far from the limits of datetime and matplotlib.
MIN_MS = 0
MAX_MS = 221_845_392_000_000 - 1
TIME_RANGE_TEXT = "years 1970 to 8999 (UTC)"

# SQLite integers are signed 64-bit: larger values could not be stored.
MAX_INT = 2**63 - 1

Ratio = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)

Rate = Field(default=None, ge=0.0, allow_inf_nan=False)


class DetailsIn(BaseModel):
    """Free-form details; the cycle record's host figures, which the graphs and
    the live page use, are checked like the record's own ratios."""

    model_config = ConfigDict(strict=True, extra="allow")

    host_cpu_ratio: float | None = Ratio
    host_memory_ratio: float | None = Ratio


class LogRecordIn(BaseModel):
    """One decision or cycle record as gestor ships it (see notes/records.md).

    Validation is strict (no "12" for 12) so the JSON kept on disk is exactly
    what the indexed columns say; unknown extra fields are accepted and kept.
    """

    model_config = ConfigDict(strict=True, extra="allow")

    id: str = Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")
    run_id: str | None = Field(
        default=None,
        pattern=r"^([0-9a-f]{32})?$",
        description="The gestor run (32 hex, random per start); empty or absent in"
        " records of older gestors, which form one legacy run per host.",
    )
    time: AwareDatetime = Field(strict=False)
    host: str = Field(max_length=255)
    cycle: int = Field(ge=0, le=MAX_INT)
    event: Event
    container_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    container_name: str | None = Field(default=None, max_length=255)
    container_type: ContainerType | None = None
    cpu_ratio: float | None = Ratio
    cpu_cores: float | None = Rate
    memory_bytes: int | None = Field(default=None, ge=0, le=MAX_INT)
    memory_ratio: float | None = Ratio
    disk_read_bytes_per_second: float | None = Rate
    disk_write_bytes_per_second: float | None = Rate
    io_read_chars_per_second: float | None = Rate
    io_write_chars_per_second: float | None = Rate
    reason: str | None = Field(default=None, max_length=8192)
    details: DetailsIn | None = None

    @field_validator("time", mode="before")
    @classmethod
    def _time_is_text(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 string such as 2026-11-29T01:23:45.678Z")
        return value

    @field_validator("time")
    @classmethod
    def _time_in_range(cls, value: datetime) -> datetime:
        if not MIN_MS <= (value - EPOCH) // timedelta(milliseconds=1) <= MAX_MS:
            raise ValueError(f"must be within {TIME_RANGE_TEXT}")
        return value

    @property
    def time_ms(self) -> int:
        """Milliseconds since the Unix epoch (UTC), the indexed sort key."""
        return (self.time - EPOCH) // timedelta(milliseconds=1)


# Alertmanager writes "no end" as Go's zero time; any time before 1970 is that.
_NO_END = datetime(1970, 1, 1, tzinfo=UTC)


class AlertIn(BaseModel):
    """One alert of an Alertmanager webhook notification (format version 4).

    Types are strict (labels and annotations are strings); fields Alertmanager
    may add in later versions are accepted and ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")

    status: AlertStatus
    labels: dict[str, str] = Field(
        description="Must hold `alertname`; `host` (when present) names the Docker host."
    )
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: AwareDatetime = Field(strict=False)  # noqa: N815 (the webhook's field names)
    endsAt: AwareDatetime | None = Field(default=None, strict=False)  # noqa: N815
    generatorURL: str = Field(default="", max_length=8192)  # noqa: N815
    fingerprint: str | None = Field(default=None, pattern=r"^[0-9a-f]{1,64}$")

    @field_validator("startsAt", "endsAt", mode="before")
    @classmethod
    def _time_is_text(cls, value: object) -> object:
        if value is not None and not isinstance(value, str):
            raise ValueError("must be an RFC 3339 string such as 2026-11-29T01:23:45.678Z")
        return value

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("alertname"):
            raise ValueError("must hold a non-empty `alertname`")
        if any(not 1 <= len(k) <= 1024 or len(v) > 8192 for k, v in value.items()):
            raise ValueError("label names are 1..1024 characters, values at most 8192")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations_bounded(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not 1 <= len(k) <= 1024 or len(v) > 65536 for k, v in value.items()):
            raise ValueError("annotation names are 1..1024 characters, values at most 65536")
        return value

    @field_validator("startsAt")
    @classmethod
    def _starts_in_range(cls, value: datetime) -> datetime:
        if not MIN_MS <= (value - EPOCH) // timedelta(milliseconds=1) <= MAX_MS:
            raise ValueError(f"must be within {TIME_RANGE_TEXT}")
        return value

    @field_validator("endsAt")
    @classmethod
    def _ends_in_range(cls, value: datetime | None) -> datetime | None:
        if value is None or value < _NO_END:
            return None  # Go's zero time (0001-01-01T00:00:00Z): no end yet
        if (value - EPOCH) // timedelta(milliseconds=1) > MAX_MS:
            raise ValueError(f"must be within {TIME_RANGE_TEXT}")
        return value

    @model_validator(mode="after")
    def _resolved_has_an_end(self) -> AlertIn:
        if self.status == "resolved" and self.endsAt is None:
            raise ValueError("a resolved alert needs `endsAt`")
        return self


class AlertmanagerWebhookIn(BaseModel):
    """The body Alertmanager's webhook receiver POSTs (version 4)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    version: Literal["4"]
    status: AlertStatus
    receiver: str = Field(default="", max_length=1024)
    groupKey: str = Field(default="", max_length=65536)  # noqa: N815
    truncatedAlerts: int = Field(default=0, ge=0, le=MAX_INT)  # noqa: N815
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = Field(default="", max_length=8192)  # noqa: N815
    alerts: list[AlertIn]


class LogRecordOut(BaseModel):
    """A stored record, returned exactly as it was received (extra fields too)."""

    model_config = ConfigDict(extra="allow")

    id: str
    time: str
    host: str | None = None
    cycle: int | None = None
    event: str
    container_id: str | None = None
    container_name: str | None = None
    container_type: str | None = None
    cpu_ratio: float | None = None
    cpu_cores: float | None = None
    memory_bytes: int | None = None
    memory_ratio: float | None = None
    disk_read_bytes_per_second: float | None = None
    disk_write_bytes_per_second: float | None = None
    io_read_chars_per_second: float | None = None
    io_write_chars_per_second: float | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None


# The body of POST /logs as documented: a record, or an array whose items are
# records; an item that is not (any JSON value) is refused alone, so the
# array itself takes anything.
BatchItem = Annotated[
    LogRecordIn | Any,
    Field(description="A record; an invalid one is refused alone, named in `rejected`."),
]
LogsBody = LogRecordIn | list[BatchItem]


class RejectedRecord(BaseModel):
    """A record of a batch that was refused (and not stored), and why."""

    index: int = Field(description="Its position in the batch (from 0).")
    id: str | None = Field(description="Its `id`, when it has a text one.")
    errors: list[dict[str, Any]] = Field(
        description="`type`, `loc` (within the record) and `msg` of each error (at most 5)."
    )
    error: str = Field(description="The errors in one line.")


class IngestResult(BaseModel):
    """What POST /logs did with a body."""

    received: int = Field(description="Records in the body.")
    stored: int = Field(description="Records newly written (and durable) by this request.")
    duplicates: int = Field(description="Records whose id was already stored (or repeated).")
    rejected: list[RejectedRecord] | None = Field(
        default=None,
        description="Invalid records of a batch, not stored (the others are); absent when none.",
    )


class LogPage(BaseModel):
    """One page of GET /logs, newest first."""

    items: list[LogRecordOut]
    count: int
    limit: int
    offset: int
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next (older) page."
    )


class FiringAlert(BaseModel):
    """An alert whose newest notification says firing."""

    name: str
    severity: str | None = None
    host: str | None = None
    summary: str | None = None
    since: str = Field(description="When it started firing (RFC 3339, UTC).")
    fingerprint: str


class Stats(BaseModel):
    """Running counters, as the live page shows them."""

    total: int
    by_event: dict[str, int]
    kills_by_type: dict[str, int]
    last_time: str | None = None
    last_cycle: dict[str, Any] | None = None
    alerts_firing: list[FiringAlert] = Field(
        default_factory=list, description="Alerts firing now (most severe, then oldest, first)."
    )


class HostTotals(BaseModel):
    """gestor's records from one host (a fleet's node) in a window; alerts are
    not counted."""

    host: str
    records: int
    cycles: int
    kills: int
    kill_failures: int
    errors: int
    last_time: str | None = None


class HostsPage(BaseModel):
    since: str | None = None
    hosts: list[HostTotals]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    records: int
    token_required: bool
    disk_free_bytes: int


def utc_text(ms: int) -> str:
    """RFC 3339 UTC text with milliseconds for an epoch-milliseconds value."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
