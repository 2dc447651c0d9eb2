"""The store: the only code that speaks SQL, over one SQLite file that users also read.

base.py      opening (WAL, busy_timeout, foreign keys), migrations, BEGIN IMMEDIATE transactions
feeds.py     feeds and their schedule; one poll's writes in one transaction; rematch verdicts
articles.py  rematch batches, full-text search, export
outbox.py    the alert outbox: due deliveries, leases, outcomes, dead letters, digest slots
stories.py   each new article's story (the index, inside apply_update's transaction), merges and splits
queries.py   `Store`: the query mixins over the SQLite connection
postgres.py  `PostgresStore`: the same mixins over PostgreSQL (psycopg), and its migrations (migrations_pg.py)
leases.py    several workers: due feeds claimed with a lease, the workers' rows (dialect.py: SQLite vs PostgreSQL)
labels.py    labels, the topics' models (plain numbers) and their calls (held-back and possible matches)
review.py    what the analyst's page reads and what its labels change: stories, the teaching queue, dismissed matches
"""

from __future__ import annotations

from pathlib import Path

from ..config import is_database_url
from .base import BUSY_TIMEOUT_MS, DATABASE_ERRORS, StoreHealth, from_db_time, recovery_advice, to_db_time
from .labels import NewLabel
from .postgres import PostgresStore
from .queries import Store


def open_store(database: str | Path, *, password_env: str | None = None) -> Store:
    """The store at `database`: a `postgresql://` URL opens PostgreSQL, anything else is a SQLite file."""
    if is_database_url(str(database)):
        return PostgresStore.open(str(database), password_env=password_env)
    return Store.open(database)


__all__ = [
    "BUSY_TIMEOUT_MS",
    "DATABASE_ERRORS",
    "NewLabel",
    "PostgresStore",
    "Store",
    "StoreHealth",
    "from_db_time",
    "is_database_url",
    "open_store",
    "recovery_advice",
    "to_db_time",
]
