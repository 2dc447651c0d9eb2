"""`Store`: every query mixin over the SQLite connection of base.py (postgres.py puts the same ones on PostgreSQL)."""

from __future__ import annotations

from .articles import ArticleQueries
from .feeds import FeedQueries
from .labels import LabelQueries
from .leases import LeaseQueries
from .outbox import OutboxQueries
from .review import ReviewQueries
from .stories import StoryQueries


class Store(FeedQueries, StoryQueries, ArticleQueries, OutboxQueries, LabelQueries, ReviewQueries, LeaseQueries):
    """Open with `Store.open(path)` (or `open_store`, which also takes a PostgreSQL URL); every method is one
    statement or one transaction."""
