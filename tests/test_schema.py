"""docs/schema.md is a contract: every table and column it names exists, and its queries run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.config import FeedConfig
from watcher.models import Article, Entry, FeedUpdate, Match
from watcher.store import Store

DOC = (Path(__file__).parent.parent / "docs" / "schema.md").read_text(encoding="utf-8")
QUERIES = re.findall(r"```sql\n(.*?)```", DOC, re.S)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("schema") / "w.db")
    now = datetime.now(UTC)
    store.sync_feeds(
        [FeedConfig("a", "https://a.example/f"), FeedConfig("b", "https://b.example/f")], timedelta(minutes=15), now
    )
    for feed_id, name in enumerate("ab", start=1):
        entry = Entry(f"https://{name}.example/f", "e1", "https://n.example/1", "https://n.example/1", "Drone factory")
        art = Article(
            "https://n.example/1",
            "Drone factory",
            "a drone factory",
            "page",
            entry,
            matches=(Match("troop_deployment", 1.0, ("drone",), "[[drone]] factory"),),
            page_outcome="paywall",
        )
        store.apply_update(
            feed_id,
            FeedUpdate(entry.feed_url, now, now, "ok", seen_entry_ids=("e1",), articles=(art,)),
            {"troop_deployment": ("mail",)},
        )
    failing = FeedUpdate("https://b.example/f", now, now, "error", error="HTTP 500", error_kind="http")
    store.apply_update(2, failing, {})
    return store


def test_the_doc_has_queries():
    assert len(QUERIES) >= 5


@pytest.mark.parametrize("sql", QUERIES, ids=[q.split("\n")[0][:40] for q in QUERIES])
def test_documented_query_runs_and_returns_rows(store, sql):
    rows = list(store.db.query(sql))
    assert rows, "each documented query should find the sample data"


def test_every_table_and_column_is_documented(store):
    for table in store.db.table_names():
        if table.startswith("articles_fts_"):
            continue  # FTS5's own shadow tables
        assert f"`{table}`" in DOC, f"table {table} is not in docs/schema.md"
        if table == "articles_fts":
            continue
        for column in store.db[table].columns_dict:
            assert re.search(rf"`{column}`|{column}[`,]", DOC), f"{table}.{column} is not in docs/schema.md"
    for view in store.db.view_names():
        assert f"`{view}`" in DOC


def test_the_schema_doc_lists_every_value_the_code_writes():
    """Statuses and failure kinds are Literal types in models.py; each value is explained in docs/schema.md."""
    from typing import get_args

    from watcher.models import BodySource, DeliveryStatus, FailureKind, FeedStatus

    doc = (Path(__file__).parent.parent / "docs" / "schema.md").read_text(encoding="utf-8")
    kinds = [v for part in get_args(FailureKind) for v in (get_args(part) or (part,))]
    for value in [*kinds, *get_args(FeedStatus), *get_args(BodySource), *get_args(DeliveryStatus)]:
        assert f"`{value}`" in doc, value
