"""Reading articles back: rematch batches, full-text search, export, and the analyst's page (web/)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..errors import StoreError
from .base import FROM_FEED, Connection, to_db_time
from .dialect import Dialect

_QUERY_TOKEN = re.compile(r'"[^"]*"?|[()]|[^\s()"]+')
_WORD_PART = re.compile(r"\w+")
_OPERATORS = ("AND", "OR", "NOT")


def fts_query(text: str) -> str:
    """A person's search as an FTS5 query that always parses: plain words, `north-korean`, "quoted phrases",
    AND/OR/NOT in capitals, prefix*, parentheses.

    FTS5's own syntax reads `north-korean` as a column filter (`no such column: korean`) and fails on a stray
    quote or a trailing AND; here every word becomes a quoted string (a hyphenated word a phrase), operators are
    kept only where they join two terms, and unbalanced parentheses are dropped. Forms come from the index's
    porter tokenizer (`drones` finds `drone`).
    """
    tokens = _QUERY_TOKEN.findall(text)
    balanced = _balanced([t for t in tokens if t in "()"])
    out: list[str] = []
    skip_next = False  # a NOT with nothing before it: FTS5 cannot say "everything but", so its term goes too
    for token in tokens:
        if token in ("(", ")"):
            if balanced:
                if token == ")" and out and out[-1] in _OPERATORS:
                    out.pop()
                out.append(token)
            continue
        if token in _OPERATORS:
            if out and out[-1] not in _OPERATORS and out[-1] != "(":
                out.append(token)
            elif token == "NOT":
                skip_next = True
            continue
        prefix = token.endswith("*") and not token.startswith('"')
        words = _WORD_PART.findall(token.strip('"*'))
        if not words:
            continue
        if skip_next:
            skip_next = False
            continue
        out.append('"' + " ".join(words) + '"' + ("*" if prefix else ""))
    while out and out[-1] in _OPERATORS:
        out.pop()
    # FTS5 joins neighbours by AND itself only between plain phrases, not around a parenthesis: say it always.
    joined: list[str] = []
    for token in out:
        if joined and joined[-1] not in (*_OPERATORS, "(") and token not in (*_OPERATORS, ")"):
            joined.append("AND")
        joined.append(token)
    query = " ".join(joined).replace("( ", "(").replace(" )", ")")
    return query if any(c not in "() " for c in query) else ""


def search_text(dialect: Dialect, fts: str) -> str:
    """What the dialect's search is given for an FTS5 query from fts_query. PostgreSQL's websearch_to_tsquery
    reads the same words, "phrases" and OR, NOT as `-`, AND as the default; it has no prefix search, so `drone*`
    is the word drone (whose stem also finds drones)."""
    if dialect.is_sqlite:
        return fts
    text = fts.replace("(", " ").replace(")", " ").replace("*", "")
    return " ".join("-" if word == "NOT" else "" if word == "AND" else word for word in text.split()).replace("- ", "-")


def _balanced(parens: list[str]) -> bool:
    depth = 0
    for p in parens:
        depth += 1 if p == "(" else -1
        if depth < 0:
            return False
    return depth == 0


class ArticleQueries(Connection):
    # --- rematch, search, export ------------------------------------------------------------------------

    def count_articles(self) -> int:
        """Every stored article, matched or kept unmatched for rematch."""
        return int(self.db.execute("SELECT count(*) FROM articles").fetchone()[0])

    def articles_to_rematch(self, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every stored article (matched ones, and unmatched ones still in the keep window), in id batches."""
        last = 0
        while True:
            rows = self._query("SELECT id, title, body FROM articles WHERE id > ? ORDER BY id LIMIT ?", [last, batch])
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]

    def search(
        self,
        query: str,
        *,
        topic: str | None = None,
        feed: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Full-text search over stored articles (see fts_query), best first, with a snippet around the hits."""
        fts = fts_query(query)
        if not fts:
            raise StoreError(f'nothing to search for in {query!r}: give a word or a "phrase"')
        d = self.dialect
        where, params = [d.search_match()], [search_text(d, fts)]
        if topic:
            where.append(
                "EXISTS (SELECT 1 FROM matches m WHERE m.article_id = a.id AND m.topic = ? AND m.retracted_at IS NULL)"
            )
            params.append(topic)
        if feed:
            where.append(FROM_FEED)
            params.append(feed)
        if since:
            where.append("coalesce(a.published_at, a.fetched_at) >= ?")
            params.append(to_db_time(since))
        sql = (
            f"SELECT a.id, a.title, a.url, a.published_at, {d.search_snippet()} AS snippet,"
            f" (SELECT {d.text_agg('m.topic', order_by='m.topic')} FROM matches m"
            "   WHERE m.article_id = a.id AND m.retracted_at IS NULL) AS topics,"
            f" {d.feed_names('a', as_json=False)} AS feeds, {d.search_rank()} AS rank"
            f" FROM {d.search_source()} WHERE {' AND '.join(where)} ORDER BY rank, a.id LIMIT ?"
        )
        try:
            return self._query(sql, [*params, limit])
        except (sqlite3.OperationalError, StoreError) as e:
            raise StoreError(
                f'cannot search for {query!r} (as {fts}): {e} (words, "phrases", AND, OR, NOT, prefix*)'
            ) from e

    def topic_names(self) -> list[str]:
        """Every topic with a stored match (a topic removed from the config keeps its matches)."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT topic FROM matches ORDER BY topic").fetchall()]

    def export_matches(self, *, topic: str | None = None, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        where, params = ["m.retracted_at IS NULL"], []
        if topic:
            where.append("m.topic = ?")
            params.append(topic)
        if since:
            where.append("m.matched_at >= ?")
            params.append(to_db_time(since))
        yield from self.db.query(
            "SELECT m.topic, m.matched_at, m.score, m.terms, m.snippet, a.title, a.url, a.published_at, a.author,"
            f" a.language, a.body_source, {self.dialect.feed_names('a', as_json=False)} AS feeds"
            f" FROM matches m JOIN articles a ON a.id = m.article_id WHERE {' AND '.join(where)} ORDER BY m.matched_at DESC",
            params,
        )

    # --- the analyst's page (watcher/web/) -----------------------------------------------------------------

    def article_page(self, article_id: int) -> dict[str, Any] | None:
        """One article with its text, its sources (feed, link, seen_at) and its matches, retracted ones included."""
        rows = self._query(
            "SELECT id, url, title, body, body_source, author, language, published_at, fetched_at, story_id"
            " FROM articles WHERE id = ?",
            [article_id],
        )
        if not rows:
            return None
        article = rows[0]
        article["sources"] = self._query(
            "SELECT f.name AS feed, s.link, s.seen_at FROM article_sources s JOIN feeds f ON f.id = s.feed_id"
            " WHERE s.article_id = ? ORDER BY s.seen_at",
            [article_id],
        )
        article["matches"] = self._query(
            "SELECT topic, score, terms, snippet, matched_at, retracted_at FROM matches WHERE article_id = ? ORDER BY topic",
            [article_id],
        )
        return article

    def articles_since(self, since: datetime, *, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Stored articles (matched, and unmatched ones still kept) fetched since `since`, in id batches: what a
        rule would have said about the last days' news (`web/` "try a rule")."""
        last = 0
        stamp = to_db_time(since)
        while True:
            rows = self._query(
                "SELECT id, title, body, url, published_at, fetched_at FROM articles WHERE id > ? AND fetched_at >= ?"
                " ORDER BY id LIMIT ?",
                [last, stamp, batch],
            )
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]
