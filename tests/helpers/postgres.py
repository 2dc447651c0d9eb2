"""A throwaway PostgreSQL 15 cluster for tests: initdb in a temporary directory, a free loopback port, stopped and
removed at the end.

The server refuses to run as root, and CI runs as root: then every server command runs as the `postgres` system user
(the Debian package creates it) through `runuser`, and the temporary directory is handed to that user. Clients
connect over TCP to 127.0.0.1 with trust authentication, so no password is involved.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def _server_bin() -> Path:
    """PostgreSQL 15's binaries, else the newest installed (a Debian without 15 installs its own version)."""
    if "WATCHER_TEST_PG_BIN" in os.environ:
        return Path(os.environ["WATCHER_TEST_PG_BIN"])
    preferred = Path("/usr/lib/postgresql/15/bin")
    if preferred.exists():
        return preferred
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )
    return found[-1] if found else preferred


PG_BIN = _server_bin()
SUPERUSER = "watcher"


def missing_reason() -> str | None:
    """None when a cluster can be started here, else why not (the tests that need one skip with it)."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL server binaries not found ({PG_BIN / tool}); install postgresql-15"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` system user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """`PostgresCluster().start()`; `.url(db)`, `.create_database()`; `.stop()` removes everything."""

    def __init__(self) -> None:
        self._template: str | None = None
        # As root, under /tmp: the postgres user must reach the directory (a TMPDIR under /root it could not), and the
        # server's socket path must stay short.
        self.dir = Path(tempfile.mkdtemp(prefix="watcher-pg-", dir="/tmp" if os.geteuid() == 0 else None))
        self.data = self.dir / "data"
        self.port = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr or result.stdout}\n{tail}")

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        result = self._run(
            PG_BIN / "initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"
        )
        if result.returncode != 0 and "locale" in (result.stderr + result.stdout).lower():
            shutil.rmtree(self.data, ignore_errors=True)
            result = self._run(
                PG_BIN / "initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale"
            )
        self._check(result, "initdb")
        for _attempt in range(5):  # another process may take the free port between our look and the server's bind
            self.port = _free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200"
            )
            result = self._run(
                PG_BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "-o", options, "start"
            )
            if result.returncode == 0:
                return self
        self._check(result, "pg_ctl start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t", *, template: str | None = None) -> str:
        """A new database (empty, or a copy of `template`); its URL. Each test gets its own, so no test sees
        another's rows."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def migrated_database(self) -> str:
        """A new database at watcher's schema: a copy of a template migrated once per run, which is faster than
        running the migrations for every test."""
        if self._template is None:
            from watcher.store import PostgresStore

            url = self.create_database("template")
            PostgresStore.open(url).close()
            self._template = url.rsplit("/", 1)[1]
        return self.create_database(template=self._template)

    def stop(self) -> None:
        if self.data.exists():
            self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
