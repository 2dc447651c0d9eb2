"""The connection: opening, migrations, transactions. The store package is the only code that speaks SQL: a single SQLite file that users also read (sqlite3 shell, Datasette, pandas).

Durability choices, checked by `Store.health()` and documented in docs/schema.md:
  * WAL, so readers never block the daemon's writes and the daemon never blocks them;
  * synchronous=NORMAL: in WAL mode a crash of the process (kill -9) loses nothing committed and never
    corrupts the file; a power cut may lose the last transactions but still not corrupt it;
  * busy_timeout, so a second writer (`watcher poll` beside the daemon) waits instead of failing;
  * every write transaction starts with BEGIN IMMEDIATE: busy_timeout does not help a read that later
    upgrades to a write, so we take the write lock up front.
Times are stored as UTC ISO 8601 text (`2026-11-26T15:09:10Z`), which sorts and compares as text and which
SQLite's date functions read.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar, overload

import sqlite_utils

from ..errors import StoreError
from .dialect import SQLITE, Dialect
from .migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 15_000

_P = ParamSpec("_P")
_T = TypeVar("_T")


# "Article `a` came from the feed named ?": the feed filter of the list and search queries.
FROM_FEED = (
    "EXISTS (SELECT 1 FROM article_sources s JOIN feeds f ON f.id = s.feed_id WHERE s.article_id = a.id AND f.name = ?)"
)


def placeholders(values: Sequence[Any]) -> str:
    """`?,?,?` for an `IN (...)` over `values`."""
    return ",".join("?" * len(values))


_SQLITE_READ_ONLY = ("readonly database", "read-only", "attempt to write a readonly")
# What a damaged or unreadable file raises on any query (malformed image, not a database, I/O error): the CLI and
# the health check catch these to say so plainly instead of a traceback.
DATABASE_ERRORS = (sqlite3.DatabaseError,)


def recovery_advice(path: str) -> str:
    """How to get the data out of a damaged file (docs/reliability.md): .recover reads what is still readable."""
    return (
        f"stop every process that uses it, then recover what is readable into a new file: "
        f"`sqlite3 {path} .recover | sqlite3 {path}.recovered`, move {path} and its -wal and -shm files aside, "
        f"and rename {path}.recovered to {path} (see docs/reliability.md)"
    )


@overload
def to_db_time(value: datetime) -> str: ...
@overload
def to_db_time(value: None) -> None: ...
def to_db_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_db_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value)  # Python 3.11 reads the Z


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (it stays so). Several workers opening a new file at once: SQLite answers the switch
    with "database is locked" at once, without waiting out the busy timeout, to a connection that loses the race
    (6 openers at once: 30 failures in 300 rounds); it is tried again until the file is in WAL or the timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # another connection is switching the file: it takes milliseconds


@dataclass(frozen=True, slots=True)
class StoreHealth:
    journal_mode: str
    synchronous: str
    busy_timeout_ms: int
    foreign_keys: bool
    schema_version: int
    integrity: str | None = None  # only when asked: integrity_check reads the whole file


class Connection:
    """One SQLite connection, opened as designed; the query mixins of the package build on it."""

    # What the queries ask of the SQL they run on (dialect.py): the claim's SKIP LOCKED, the placeholders.
    dialect: Dialect = SQLITE

    def __init__(self, db: sqlite_utils.Database, path: str):
        self.db = db
        # Where the side files go (`<path>.crash`, `<path>.failing`): the file itself for SQLite.
        self.path = path
        self.name = path  # how messages name the database
        self.target = path  # what opens it again: `[watcher] database`, `--db`
        self._thread: ThreadPoolExecutor | None = None
        self._reader: Connection | None = None
        # Deliveries this process sent but could not yet mark sent (the database was busy or unwritable): no pass
        # over this database (nor a dispatcher that replaced another on a reload) takes them again, whatever their
        # lease says. Kept with the store, since delivery ids are this database's.
        self.sent_unrecorded: set[int] = set()

    async def call(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run one store method on the store's own thread: `await store.call(store.mark_sent, ids, now)`.

        A busy database (another process holding the write lock up to busy_timeout) then delays that write, not
        the event loop with /healthz, the scheduler, signals and the alert pass. One thread, so the calls on the
        one connection stay serial and a transaction is never interleaved with another call's statements."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="watcher-store")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(_translated, method, *args, **kwargs))

    def reader(self) -> Self:
        """A second connection for health and metrics reads, used from a thread: in WAL mode a read never waits
        for a writer, and it must not queue behind a write that waits for a lock on the main connection."""
        if self._reader is None:
            if self.path == ":memory:":
                return self
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=2.0)
            conn.execute("PRAGMA busy_timeout = 2000")
            self._reader = type(self)(sqlite_utils.Database(conn), self.path)
        return self._reader  # type: ignore[return-value]

    def open_another(self) -> Self:
        """A new store on the same database, for a thread of its own (previews, retraining)."""
        return type(self).open(self.path)

    @classmethod
    def open(cls, path: str | Path) -> Self:
        path = str(path)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves (see the module docstring).
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(sqlite_utils.Database(conn), path)
            store.migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open database {path}: {e}") from e
        return store

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.db.conn.close()

    # --- transactions and schema ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"database is busy or unwritable{_hint(e)}: {e}") from e
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"database write failed{_hint(e)}: {e}") from e
            raise

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def _select_in(self, select_in: str, values: Sequence[Any], fixed: Sequence[Any] = ()) -> Iterator[tuple]:
        """The rows of `select_in` (a query ending in `IN`, its other parameters `fixed`) for each of `values`,
        asked 500 at a time: SQLite's default cap on parameters was 999 before 3.32."""
        for chunk in _chunks(values, 500):
            yield from self.db.conn.execute(f"{select_in} ({placeholders(chunk)})", [*fixed, *chunk])

    def schema_version(self) -> int:
        return self.db.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema {current}, newer than this watcher knows ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._write() as conn:
                # Several workers starting at once on a new file all saw the old version: the first to hold the write
                # lock applies the migration, the others find it applied.
                if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                    continue
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def quick_check(self) -> str | None:
        """None when `PRAGMA quick_check` finds the file sound, else what it found (the first problems).

        Reads every page, so it runs once at start-up: a damaged table otherwise looks healthy while every write
        to it fails (seen: a feed re-fetched each tick, `/healthz` ok)."""
        try:
            rows = [r[0] for r in self.db.conn.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as e:
            return str(e)
        return None if rows == ["ok"] else "; ".join(rows)[:500]

    def health(self, *, check_integrity: bool = False) -> StoreHealth:
        pragma = lambda name: self.db.conn.execute(f"PRAGMA {name}").fetchone()[0]
        levels = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return StoreHealth(
            journal_mode=pragma("journal_mode"),
            synchronous=levels.get(pragma("synchronous"), "?"),
            busy_timeout_ms=pragma("busy_timeout"),
            foreign_keys=bool(pragma("foreign_keys")),
            schema_version=self.schema_version(),
            integrity=pragma("integrity_check") if check_integrity else None,
        )

    def probe_write(self, timeout_s: float = 2.0) -> str | None:
        """None when the database can be written now, else why not.

        Takes the write lock and writes a row on a connection of its own, then rolls back: safe from any thread,
        never inside a caller's transaction, and it catches a read-only file or a lock someone holds for good.
        """
        if self.path == ":memory:":
            return None
        try:
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except sqlite3.Error as e:
            return f"cannot open {self.path}: {e}"
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO channel_state (channel) VALUES (?)", (f"(health probe {id(conn)})",))
            return None
        except sqlite3.Error as e:
            return str(e)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()


def _translated(method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """A read that meets a damaged page raises sqlite3.DatabaseError: a StoreError for the caller, like writes."""
    try:
        return method(*args, **kwargs)
    except sqlite3.DatabaseError as e:
        raise StoreError(f"database read failed{_hint(e)}: {e}") from e


def _hint(error: sqlite3.Error) -> str:
    """What an SQLite error most likely means for the operator: a read-only file, a full disk and a damaged file
    need different fixes, and a read-only file was once reported as "is the disk full?"."""
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error).lower()
    if name.startswith("SQLITE_READONLY") or any(s in text for s in _SQLITE_READ_ONLY):
        return " (the file, its directory or its -wal/-shm files are read-only for this process)"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return " (the file is damaged; `sqlite3 FILE .recover`, see docs/reliability.md)"
    if name == "SQLITE_FULL" or "database or disk is full" in text:
        return " (is the disk full?)"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
        return " (an I/O error: is the disk full or failing, or the file read-only?)"
    return ""


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement keeps trigger bodies whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
