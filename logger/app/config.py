"""Settings, read once from the environment (prefix ``LOGGER_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SQLITE_PREFIX = "sqlite://"
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def duration_ms(text: str) -> int:
    """``15m``, ``6h``, ``14d``... in milliseconds."""
    match = re.fullmatch(r"(\d+)([smhdw])", text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def _token_from_file(variable: str, path: Path | None) -> str | None:
    """The token a ``*_FILE`` setting names (surrounding white space and the
    trailing newline left out); a clear error when it cannot be had."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{variable}={path}: cannot read the token: {exc}") from None
    if not token:
        raise ValueError(f"{variable}={path}: the file is empty")
    return token


class Settings(BaseSettings):
    """Everything the service can be told; see README.md for each variable."""

    model_config = SettingsConfigDict(env_prefix="LOGGER_", extra="ignore")

    data_dir: Path = Field(default=Path("/data"), description="Where the SQLite file lives.")
    database_url: str | None = Field(
        default=None,
        description="`sqlite:///abs/path` or `postgresql://user@host:port/db`; unset: the"
        " SQLite file under data_dir.",
    )
    database_password_file: Path | None = Field(
        default=None, description="A file holding the PostgreSQL password (a Swarm secret)."
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="uvicorn worker processes (PostgreSQL only above 1)."
    )
    token: str | None = Field(
        default=None, description="When set, POST /logs needs `Authorization: Bearer <token>`."
    )
    token_file: Path | None = Field(
        default=None, description="A file holding LOGGER_TOKEN (a Swarm secret); read at start."
    )
    read_token: str | None = Field(
        default=None,
        description="When set, every read needs `Authorization: Bearer <token>` or HTTP Basic"
        " auth with the token as password; /health, /healthz and /metrics stay open.",
    )
    read_token_file: Path | None = Field(
        default=None, description="A file holding LOGGER_READ_TOKEN; read at start."
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    port: int = Field(default=8000, ge=1, le=65535, description="Used by the container's CMD.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="SQLite `synchronous` pragma for the WAL database."
    )
    default_range: str = Field(
        default="24h",
        pattern=r"^(all|[1-9]\d{0,5}[smhdw])$",
        description="Graph range when none is given.",
    )
    sse_keepalive_seconds: float = Field(default=15.0, gt=0, le=300)
    retention: str = Field(
        default="14d",
        pattern=r"^(off|[1-9]\d{0,5}[smhdw])$",
        description="Records older than this are deleted (`off`: kept forever).",
    )
    retention_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    retention_batch: int = Field(default=1000, ge=1, le=100_000)
    min_free_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="/healthz fails when the data directory has less free space.",
    )
    render_mode: Literal["process", "thread"] = Field(
        default="process",
        description="Draw graphs in separate processes (default) or in threads of this one.",
    )
    render_nice: int = Field(
        default=10, ge=0, le=19, description="Niceness of the render process (0: as the service)."
    )
    render_slots: int = Field(default=1, ge=1, le=8, description="Graphs drawn at once.")
    render_queue: int = Field(default=4, ge=0, le=100, description="Graphs waiting; more: 503.")
    render_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    graph_cache_entries: int = Field(default=64, ge=0, le=4096)
    # Bounds for any reader (app/limits.py).
    sse_max_streams: int = Field(default=64, ge=1, le=10_000, description="Live streams in all.")
    sse_max_streams_per_client: int = Field(
        default=8, ge=1, le=10_000, description="Live streams of one client address."
    )
    sse_send_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="A stream whose reader stops is dropped after."
    )
    graph_cache_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="A rendered graph is reused for this long."
    )
    max_concurrent_requests: int = Field(
        default=64, ge=1, le=10_000, description="Requests in flight; more get 503."
    )

    # Tokens may come from files (Swarm secrets, the stack's init volume); a
    # non-empty LOGGER_TOKEN / LOGGER_READ_TOKEN wins over its file (an override).
    @model_validator(mode="after")
    def _tokens_from_files(self) -> Settings:
        self.token = self.token or _token_from_file("LOGGER_TOKEN_FILE", self.token_file)
        self.read_token = self.read_token or _token_from_file(
            "LOGGER_READ_TOKEN_FILE", self.read_token_file
        )
        return self

    @model_validator(mode="after")
    def _one_engine(self) -> Settings:
        url = self.database_url
        if url is not None and not url.startswith(SQLITE_PREFIX) and not self.is_postgres:
            raise ValueError(
                f"LOGGER_DATABASE_URL must start with {SQLITE_PREFIX} or postgresql://,"
                f" not {url.split(':', 1)[0]!r}"
            )
        if (
            url is not None
            and url.startswith(SQLITE_PREFIX)
            and not url[len(SQLITE_PREFIX) :].startswith("/")
        ):
            raise ValueError("LOGGER_DATABASE_URL: sqlite:/// needs an absolute path")
        if self.workers > 1 and not self.is_postgres:
            raise ValueError(
                f"LOGGER_WORKERS={self.workers} needs PostgreSQL: SQLite has one writer, so the"
                " log service runs as exactly one process on it (set LOGGER_DATABASE_URL to a"
                " postgresql:// URL, or LOGGER_WORKERS=1)"
            )
        return self

    @property
    def is_postgres(self) -> bool:
        url = self.database_url or ""
        return url.startswith(("postgresql://", "postgres://"))

    @property
    def postgres_url(self) -> str:
        """The libpq URL, with the password file's content when one is given."""
        if not self.is_postgres:
            raise ValueError("not a PostgreSQL database URL")
        url = self.database_url or ""
        if self.database_password_file is not None:
            password = self.database_password_file.read_text().strip()
            url = f"{url}{'&' if '?' in url else '?'}password={quote(password, safe='')}"
        return url

    @property
    def db_path(self) -> Path:
        url = self.database_url
        if url is not None and url.startswith(SQLITE_PREFIX):
            return Path(url[len(SQLITE_PREFIX) :])
        return self.data_dir / "logs.sqlite3"

    @property
    def database_locator(self) -> Path | str:
        """What storage opens: the SQLite file's path or the PostgreSQL URL."""
        return self.postgres_url if self.is_postgres else self.db_path

    @property
    def lock_path(self) -> Path:
        return self.db_path.parent / "logger.lock"

    @property
    def token_required(self) -> bool:
        return bool(self.token)

    @property
    def read_token_required(self) -> bool:
        return bool(self.read_token)

    @property
    def retention_ms(self) -> int | None:
        return None if self.retention == "off" else duration_ms(self.retention)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
