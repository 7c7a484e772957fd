"""A PostgreSQL cluster of Debian's postgresql-15 in a scratch directory, for
the bench: initdb + pg_ctl, listening only on a Unix socket in that
directory (listen_addresses=''), so no TCP port is picked at all. Run as the
`postgres` user when the bench runs as root (the server refuses root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
USER = "postgres"


def _bin(name: str) -> str:
    for d in BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    raise SystemExit(f"no {name} under /usr/lib/postgresql: apt-get install postgresql-15")


class Postgres:
    """The cluster; ``url(db)`` is the libpq URL of a database in it."""

    def __init__(self) -> None:
        # Short: a socket path must fit in 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="fb-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            user = pwd.getpwnam(USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.pid: int | None = None

    def _run(self, *cmd: str) -> str:
        argv = ["runuser", "-u", USER, "--", *cmd] if self.as_root else list(cmd)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> Postgres:
        self._run(_bin("initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        options = f"-c listen_addresses='' -k {self.dir} -c max_connections=200"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self

    def create_database(self, name: str) -> str:
        self._run(_bin("createdb"), "-h", str(self.dir), "-U", USER, name)
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql://{USER}@/{db}?host={self.dir}"

    def stop(self) -> None:
        if self.pid is not None:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)
