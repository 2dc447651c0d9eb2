"""The store: the only code that speaks SQL, over one SQLite file that users also read.

base.py      opening (WAL, busy_timeout, foreign keys), migrations, BEGIN IMMEDIATE transactions
feeds.py     feeds and their schedule; one poll's writes in one transaction; rematch verdicts
articles.py  rematch batches, full-text search, export
outbox.py    the alert outbox: due deliveries, leases, outcomes, dead letters, digest slots
stories.py   each new article's story (the index, inside apply_update's transaction), merges and splits
leases.py    several workers: due feeds claimed with a lease, the workers' rows (dialect.py: SQLite vs PostgreSQL)
labels.py    labels, the topics' models (plain numbers) and their calls (held-back and possible matches)
review.py    what the analyst's page reads and what its labels change: stories, the teaching queue, dismissed matches
"""

from __future__ import annotations

from .articles import ArticleQueries
from .base import BUSY_TIMEOUT_MS, DATABASE_ERRORS, StoreHealth, from_db_time, recovery_advice, to_db_time
from .feeds import FeedQueries
from .labels import LabelQueries, NewLabel
from .leases import LeaseQueries
from .outbox import OutboxQueries
from .review import ReviewQueries
from .stories import StoryQueries


class Store(FeedQueries, StoryQueries, ArticleQueries, OutboxQueries, LabelQueries, ReviewQueries, LeaseQueries):
    """Open with `Store.open(path)`; every method is one statement or one transaction."""


__all__ = [
    "BUSY_TIMEOUT_MS",
    "DATABASE_ERRORS",
    "NewLabel",
    "Store",
    "StoreHealth",
    "from_db_time",
    "recovery_advice",
    "to_db_time",
]
