"""Settings, read once from the environment (prefix ``LOGGER_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def db_path(self) -> Path:
        return self.data_dir / "logs.sqlite3"

    @property
    def token_required(self) -> bool:
        return bool(self.token)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
