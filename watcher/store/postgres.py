"""PostgreSQL as a second store (issue 14): the one module that imports psycopg. Opening a connection from a
`postgresql://` URL, and the numbered migrations of migrations_pg.py.

The password never sits in the config file: a URL that carries one is refused; it comes from the variable named by
`[watcher] password_env`, else from libpq's own PGPASSWORD or ~/.pgpass. Several workers may start at once: the
migrations run under a transaction-scoped advisory lock, so exactly one applies each and the others wait and find
it applied.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ..errors import StoreError
from ..models import FeedRecord
from .base import to_db_time
from .dialect import POSTGRES
from .feeds import _feed_record
from .leases import WORKER_ROW_KEPT, by_schedule, claim_params, claim_sql, heartbeat_sql, prune_workers_sql, release_sql
from .migrations_pg import PG_MIGRATIONS, VERSION_TABLE

URL_SCHEMES = ("postgresql://", "postgres://")
# Any constant shared by every watcher: the key of the advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x77617463  # "watc"


def is_database_url(value: str) -> bool:
    """True for a PostgreSQL URL; anything else is a SQLite file path."""
    return value.startswith(URL_SCHEMES)


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


def claim_due_feeds(conn: Any, owner: str, now: datetime, lease: timedelta, limit: int) -> list[FeedRecord]:
    """Up to `limit` due feeds nobody holds a live lease on, leased to `owner`: see leases.py. Its own transaction."""
    from psycopg.rows import dict_row

    with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(claim_sql(POSTGRES, limit), claim_params(owner, now, lease)).fetchall()
    return [_feed_record(r) for r in by_schedule(rows)]


def release_feed_leases(conn: Any, owner: str, feed_ids: Sequence[int]) -> int:
    if not feed_ids:
        return 0
    with conn.transaction():
        return conn.execute(release_sql(POSTGRES, feed_ids), (owner, *feed_ids)).rowcount


def record_worker_tick(conn: Any, name: str, host: str, pid: int, now: datetime, feeds_polled: int) -> None:
    stamp = to_db_time(now)
    with conn.transaction():
        conn.execute(heartbeat_sql(POSTGRES), (name, host, pid, stamp, stamp, feeds_polled))
        conn.execute(prune_workers_sql(POSTGRES), (to_db_time(now - WORKER_ROW_KEPT),))


def _safe(url: str) -> str:
    """The URL as it may be logged: host, port and database, no user name."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
