"""`watcher db copy SQLITE_FILE POSTGRES_URL`: move an installation from its SQLite file to PostgreSQL (issue 14).

Table by table in the order of their foreign keys, in batches of one transaction each, every row inserted with
`ON CONFLICT DO NOTHING` and its SQLite id kept: a second run copies nothing twice, and a run stopped halfway
(Ctrl-C, a lost connection) is resumed by running it again. Meant for a PostgreSQL database that is new or was filled
by earlier runs of this copy, with no watcher running on either side. The SQLite file is opened read-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .migrations import MIGRATIONS
from .postgres import connect, migrate

# Parents before children. stories.merged_into points into stories itself: it is copied as NULL, then set.
TABLES = (
    "feeds",
    "stories",
    "articles",
    "seen_entries",
    "article_sources",
    "matches",
    "deliveries",
    "channel_state",
    "labels",
    "topic_models",
    "model_calls",
    "story_keys",
    "story_terms",
    "workers",
)
WITH_IDS = ("feeds", "stories", "articles", "deliveries", "labels")
BATCH = 1000

Progress = Callable[[str, int], None]


def _open_sqlite(path: str | Path) -> sqlite3.Connection:
    if not Path(path).exists():
        raise StoreError(f"{path} does not exist")
    try:
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise StoreError(f"cannot read {path}: {e}") from e
    if version != len(MIGRATIONS):
        conn.close()
        raise StoreError(
            f"{path} has schema {version}, this watcher {len(MIGRATIONS)}: open it once with this watcher "
            "(`watcher status`) to migrate it, then copy"
        )
    return conn


def rows_to_copy(sqlite_path: str | Path) -> dict[str, int]:
    """Rows per table in the SQLite file: the progress bar's length."""
    conn = _open_sqlite(sqlite_path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def copy_to_postgres(
    sqlite_path: str | Path, url: str, *, password_env: str | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """Copy every row; per table, the rows that were new to PostgreSQL."""
    import psycopg

    source = _open_sqlite(sqlite_path)
    target = connect(url, password_env=password_env)
    added: dict[str, int] = {}
    try:
        migrate(target)
        for table in TABLES:
            columns = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
            added[table] = 0
            for batch in _batches(source, table, columns):
                added[table] += _insert(target, table, columns, batch)
                if progress:
                    progress(table, len(batch))
        with target.transaction():
            for merged in _batches(source, "stories", ["id", "merged_into"], where="merged_into IS NOT NULL"):
                with target.cursor() as cursor:
                    cursor.executemany("UPDATE stories SET merged_into = %s WHERE id = %s", [(m, i) for i, m in merged])
            for table in WITH_IDS:  # new rows made by PostgreSQL must not take a copied id
                target.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
                )
    except psycopg.Error as e:
        raise StoreError(f"copy failed (run it again to resume): {e}") from e
    finally:
        source.close()
        target.close()
    return added


def _batches(
    source: sqlite3.Connection, table: str, columns: list[str], where: str = "1"
) -> Iterator[list[tuple[Any, ...]]]:
    order = "id" if "id" in columns else ", ".join(columns[:2])
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where} ORDER BY {order}")
    while batch := cursor.fetchmany(BATCH):
        yield [tuple(_clean(v) for v in row) for row in batch]


def _clean(value: Any) -> Any:
    """PostgreSQL's text cannot hold NUL, which SQLite's can (feed text is anyone's): it is dropped."""
    return value.replace("\x00", "") if isinstance(value, str) else value


def _insert(target: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> int:
    values = list(rows)
    if table == "stories":
        at = columns.index("merged_into")
        values = [(*r[:at], None, *r[at + 1 :]) for r in rows]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"
    )
    with target.transaction(), target.cursor() as cursor:
        cursor.executemany(sql, values, returning=False)
        return max(cursor.rowcount, 0)
