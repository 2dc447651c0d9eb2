"""PostgreSQL as a second store: the one module that imports psycopg. Opening a connection from a `postgresql://`
URL, the numbered migrations of migrations_pg.py, and `PostgresStore`: the same query mixins as SQLite's `Store`
over a psycopg connection that speaks the sqlite3 calls they use (`execute`, `executemany`, `in_transaction`).

The statements stay the ones written for SQLite: `translate` turns `?` and `:name` into psycopg's placeholders once
per statement, and what really differs asks dialect.py by name. Values are bound on the server, so psycopg prepares
a statement it has run a few times and the server plans it once: a poll's write went from 29 to 14-18 ms (3 new
articles, 2-core machine) against client-side binding, which plans every statement anew.

The password never sits in the config file: a URL that carries one is refused; it comes from the variable named by
`[watcher] password_env`, else from libpq's own PGPASSWORD or ~/.pgpass. Several workers may start at once: the
migrations run under a transaction-scoped advisory lock, so exactly one applies each and the others wait and find
it applied.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from ..errors import StoreConflict, StoreError
from .base import StoreHealth
from .dialect import POSTGRES
from .migrations_pg import PG_MIGRATIONS, VERSION_TABLE
from .queries import Store

# Any constant shared by every watcher: the key of the advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x77617463  # "watc"


def connect(url: str, *, password_env: str | None = None, autocommit: bool = False) -> Any:
    """A psycopg connection to `url`; StoreError when the URL carries a password or the server cannot be reached."""
    import psycopg

    if urlsplit(url).password is not None:
        raise StoreError("the database URL carries a password: put it in the variable named by password_env instead")
    extra: dict[str, Any] = {}
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise StoreError(f"password_env names {password_env}, which is not set")
        extra["password"] = password
    try:
        return psycopg.connect(url, autocommit=autocommit, **extra)
    except psycopg.Error as e:
        raise StoreError(f"cannot open database {_safe(url)}: {e}") from e


def schema_version(conn: Any) -> int:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 'watcher_schema')"
    ).fetchone()
    if not row[0]:
        return 0
    version = conn.execute("SELECT max(version) FROM watcher_schema").fetchone()[0]
    return int(version or 0)


def migrate(conn: Any) -> int:
    """Apply the migrations this database lacks, each in its own transaction; the version reached."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(VERSION_TABLE)
        while True:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                current = schema_version(conn)
                if current > len(PG_MIGRATIONS):
                    raise StoreError(
                        f"the database has schema {current}, newer than this watcher knows ({len(PG_MIGRATIONS)})"
                    )
                if current == len(PG_MIGRATIONS):
                    return current
                conn.execute(PG_MIGRATIONS[current])
                conn.execute("DELETE FROM watcher_schema")
                conn.execute("INSERT INTO watcher_schema (version) VALUES (%s)", (current + 1,))
    except psycopg.Error as e:
        raise StoreError(f"cannot migrate the database: {e}") from e


# --- the store over PostgreSQL ---------------------------------------------------------------------------------

# Outside string literals: a `?`, a `:name` (not a `::type` cast) or a `%` (psycopg's own placeholder sign).
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|(?<!:):([A-Za-z_]\w*)|\?|%")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """A statement written for sqlite3 (`?`, `:name`) with psycopg's placeholders (`%s`, `%(name)s`)."""

    def replace(m: re.Match[str]) -> str:
        text = m.group(0)
        if text.startswith("'"):
            return text.replace("%", "%%")  # psycopg reads placeholders inside literals too
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        return f"%({m.group(1)})s"

    return _PLACEHOLDER.sub(replace, sql)


def _bound(params: Any) -> Any:
    """sqlite3 stores True as 1; the schema's flags are integers, which PostgreSQL does not fill from booleans."""
    if isinstance(params, Mapping):
        return {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
    return [int(v) if isinstance(v, bool) else v for v in params]


class PgConnection:
    """A psycopg connection (autocommit, client-side binding) answering the sqlite3 calls the query mixins make.

    Errors become StoreError with what the server said, so callers handle one exception as with SQLite."""

    def __init__(self, conn: Any):
        self.raw = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        import psycopg

        try:
            return self.raw.execute(translate(sql), _bound(params))
        except psycopg.Error as e:
            raise _store_error("database query failed", e) from e

    def executemany(self, sql: str, rows: Any) -> Any:
        import psycopg

        cursor = self.raw.cursor()
        try:
            cursor.executemany(translate(sql), [_bound(r) for r in rows])
        except psycopg.Error as e:
            raise _store_error("database write failed", e) from e
        return cursor

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def close(self) -> None:
        self.raw.close()


class PgDatabase:
    """The part of sqlite_utils.Database the mixins use: `conn`, `execute`, and `query` giving dicts."""

    def __init__(self, conn: PgConnection):
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Any = ()) -> Iterator[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        if cursor.description is None:
            return
        names = [c.name for c in cursor.description]
        for row in cursor.fetchall():
            yield dict(zip(names, row))


def side_files_stem(url: str) -> str:
    """Where this machine keeps a PostgreSQL database's side files (the crash report, the failing-writes marker),
    which sit next to the file for SQLite: per user and database, so `watcher status --check` finds the daemon's."""
    parts = urlsplit(url)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "watcher"
    name = f"{parts.hostname or 'local'}-{parts.port or 5432}-{parts.path.strip('/') or 'postgres'}"
    base.mkdir(parents=True, exist_ok=True)
    return str(base / re.sub(r"[^A-Za-z0-9_.-]", "_", name))


class PostgresStore(Store):
    """The store on a PostgreSQL database: `PostgresStore.open("postgresql://watcher@db/watcher")`."""

    dialect = POSTGRES

    def __init__(self, db: PgDatabase, path: str, *, url: str, password_env: str | None):
        super().__init__(db, path)  # type: ignore[arg-type]  # PgDatabase answers what the mixins ask of a Database
        self.pg = db.conn
        self.url = url
        self.password_env = password_env
        self.name = _safe(url)
        self.target = url

    @classmethod
    def open(cls, path: str | Path, *, password_env: str | None = None) -> Self:
        url = str(path)
        conn = connect(url, password_env=password_env, autocommit=True)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(PgDatabase(PgConnection(conn)), side_files_stem(url), url=url, password_env=password_env)

    def open_another(self) -> Self:
        return type(self).open(self.url, password_env=self.password_env)

    def reader(self) -> Self:
        """A second connection for health and metrics reads, so they never queue behind this one's write."""
        if self._reader is None:
            self._reader = self.open_another()
        return self._reader  # type: ignore[return-value]

    @contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self.pg
        conn.execute("BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.raw.execute("ROLLBACK")
            raise

    def apply_update(self, *args: Any, **kwargs: Any) -> int:
        """One poll's writes; run again when another worker's transaction deadlocked with it (two feeds carrying
        the same articles, written at once): the server rolled it back whole, so nothing is written twice."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return super().apply_update(*args, **kwargs)
            except StoreConflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def schema_version(self) -> int:
        return schema_version(self.pg.raw)

    def migrate(self) -> None:
        migrate(self.pg.raw)

    def quick_check(self) -> str | None:
        """PostgreSQL checks its own pages (checksums, WAL replay); there is no file of ours to check."""
        return None

    def health(self, *, check_integrity: bool = False) -> StoreHealth:
        raw = self.pg.raw
        return StoreHealth(
            journal_mode="postgresql",
            synchronous=str(raw.execute("SHOW synchronous_commit").fetchone()[0]),
            busy_timeout_ms=0,
            foreign_keys=True,
            schema_version=self.schema_version(),
            integrity=None,
        )

    def probe_write(self, timeout_s: float = 2.0) -> str | None:
        """None when the database takes a write now, else why not: a row written and rolled back on a connection
        of its own, with a lock timeout so a held lock is reported instead of waited on."""
        import psycopg

        try:
            conn = connect(self.url, password_env=self.password_env)
        except StoreError as e:
            return str(e)
        try:
            conn.execute(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'")
            conn.execute("INSERT INTO channel_state (channel) VALUES (%s)", (f"(health probe {id(conn)})",))
            return None
        except psycopg.Error as e:
            return _first_line(e)
        finally:
            conn.rollback()
            conn.close()


# SQLSTATEs of a transaction the server rolled back because it met another one: serialization_failure,
# deadlock_detected. Running it again is the documented remedy.
_CONFLICTS = ("40001", "40P01")
CONFLICT_ATTEMPTS = 3


def _store_error(what: str, error: Any) -> StoreError:
    kind = StoreConflict if getattr(error, "sqlstate", None) in _CONFLICTS else StoreError
    return kind(f"{what}: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _safe(url: str) -> str:
    """The URL as it may be logged: host, port and database, no user name."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
