"""A real PostgreSQL server for the tests: Debian's postgresql-15, a cluster made
with ``initdb`` in a scratch directory and started with ``pg_ctl``, listening
only on a Unix socket in that directory (``listen_addresses=''``), so no TCP
port is picked at all. initdb refuses root: as root the cluster belongs to the
``postgres`` system user (the package's) and its commands run through
``runuser``."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OWNER = "postgres"


class PostgresCluster:
    """One scratch cluster; ``database()`` makes a fresh database in it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gestor-pg-store-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir
        self.user = OWNER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OWNER)
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.dir.chmod(0o755)

    def _run(self, *cmd: str) -> None:
        argv = [str(PG_BIN / cmd[0]), *cmd[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", OWNER, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")

    def start(self) -> PostgresCluster:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"no {PG_BIN}/initdb: install Debian's postgresql-15")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses='' -k {self.socket_dir} -c max_connections=300"
            " -c shared_buffers=64MB"
            # A scratch cluster: the drills kill workers, never this server,
            # so its own fsyncs would only slow every test's CREATE DATABASE.
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql:///{dbname}?host={self.socket_dir}&user={self.user}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drops the database of ``url`` (each is about 8 MB on disk)."""
        name = url.split("///", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
