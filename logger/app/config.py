"""Settings, read once from the environment (prefix ``LOGGER_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    token: str | None = Field(
        default=None, description="When set, POST /logs needs `Authorization: Bearer <token>`."
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
    # Tokens may come from files (Swarm secrets, the stack's init volume); a
    # non-empty LOGGER_TOKEN / LOGGER_READ_TOKEN wins over its file (an override).
    token_file: Path | None = Field(default=None, description="File holding LOGGER_TOKEN.")
    read_token: str | None = Field(
        default=None,
        description="When set, every read (GET /logs, /events, /graphs, /) needs this token.",
    )
    read_token_file: Path | None = Field(default=None, description="File holding the read token.")

    @model_validator(mode="after")
    def _tokens_from_files(self) -> Settings:
        self.token = self.token or _token_from_file("LOGGER_TOKEN_FILE", self.token_file)
        self.read_token = self.read_token or _token_from_file(
            "LOGGER_READ_TOKEN_FILE", self.read_token_file
        )
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "logs.sqlite3"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "logger.lock"

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
