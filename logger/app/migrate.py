"""``python -m app.migrate``: applies the schema migrations and exits 0.

Idempotent. On PostgreSQL under ``pg_advisory_lock`` (workers migrate at start
under the same lock, so one-shots and workers may run at once); on SQLite
under the data directory's lock, the one a running service holds (so it
refuses to migrate a file a service is writing). Run it as a one-shot step
before the workers start: a long migration then never runs inside a health
check's window."""

from __future__ import annotations

import logging
import sys
import time

from .config import Settings
from .db import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from .db import Database
from .main import SingleWorkerLock
from .postgres import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from .postgres import migrate as migrate_postgres

log = logging.getLogger("logger.migrate")


def run(settings: Settings) -> str:
    """Migrates the database ``settings`` names; what was done, in words."""
    started = time.monotonic()
    if settings.is_postgres:
        found = migrate_postgres(settings.postgres_url)
        target, engine = POSTGRES_SCHEMA_VERSION, "postgresql"
    else:
        lock = SingleWorkerLock(settings.lock_path)
        lock.acquire()
        try:
            Database(settings.db_path, settings.synchronous).close()
        finally:
            lock.release()
        found, target, engine = -1, SQLITE_SCHEMA_VERSION, "sqlite"
    took = time.monotonic() - started
    before = f" from {found}" if found >= 0 else ""
    return f"{engine} database at schema {target}{before} ({took:.2f} s)"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        print(run(Settings()))
    except Exception as exc:  # a clear line, not a traceback, for the operator
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
