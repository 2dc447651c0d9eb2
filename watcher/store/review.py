"""What the analyst's page (watcher/web/) reads and changes beyond the other mixins: stories as the page lists them,
matches without the ones labelled "not relevant", the teaching queue (held-back and possible matches not yet
labelled), and the writes that follow a label: a match dismissed skips its pending alerts; a model call
confirmed becomes a match.

A label itself is written by LabelQueries.label_article (labels.py), the one way labels are made.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..errors import StoreError
from .articles import fts_query, search_text
from .base import FROM_FEED, Connection, to_db_time

# A match (m) the analyst labelled "not relevant" for its topic: it leaves the lists (the label stays the record).
DISMISSED = "EXISTS (SELECT 1 FROM labels l WHERE l.article_id = m.article_id AND l.topic = m.topic AND l.label = 'no')"
LABEL_OF = "(SELECT l.label FROM labels l WHERE l.article_id = m.article_id AND l.topic = m.topic)"


class ReviewQueries(Connection):
    # --- matches ---------------------------------------------------------------------------------------------

    def latest_matches(
        self,
        *,
        topic: str | None = None,
        feed: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Matches (not retracted, not labelled "not relevant"), newest first: article id, topic, title, url, times,
        terms and snippet (JSON list and [[ ]]-marked text as stored), feeds (a JSON list), the label if any."""
        where, params = ["m.retracted_at IS NULL", f"NOT {DISMISSED}"], []
        if topic:
            where.append("m.topic = ?")
            params.append(topic)
        if feed:
            where.append(FROM_FEED)
            params.append(feed)
        if since:
            where.append("m.matched_at >= ?")
            params.append(to_db_time(since))
        return self._query(
            "SELECT a.id AS article_id, m.topic, m.score, m.terms, m.snippet, m.matched_at, a.title, a.url,"
            f" a.published_at, {self.dialect.feed_names('a', as_json=True)} AS feeds, {LABEL_OF} AS label"
            f" FROM matches m JOIN articles a ON a.id = m.article_id WHERE {' AND '.join(where)}"
            " ORDER BY m.matched_at DESC, a.id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    # --- stories --------------------------------------------------------------------------------------------

    def story_list(
        self,
        *,
        topic: str | None = None,
        feed: str | None = None,
        since: datetime | None = None,
        query: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Stories with a standing match (and with an article that `query` finds: FTS5 syntax, as `search`) (not retracted, not labelled "not relevant"), newest first: id, headline,
        sources, articles, first_seen, last_seen, topics (list), snippet (the best match's, [[ ]]-marked)."""
        match_where = ["a.story_id = s.id", "m.retracted_at IS NULL", f"NOT {DISMISSED}"]
        params: list[Any] = []
        if topic:
            match_where.append("m.topic = ?")
            params.append(topic)
        standing = f"FROM articles a JOIN matches m ON m.article_id = a.id WHERE {' AND '.join(match_where)}"
        where = ["s.merged_into IS NULL", "s.articles > 0", f"EXISTS (SELECT 1 {standing})"]
        where_params = list(params)
        if since:
            where.append("s.last_seen >= ?")
            where_params.append(to_db_time(since))
        if feed:
            where.append(
                "EXISTS (SELECT 1 FROM articles a JOIN article_sources src ON src.article_id = a.id"
                " JOIN feeds f ON f.id = src.feed_id WHERE a.story_id = s.id AND f.name = ?)"
            )
            where_params.append(feed)
        if query:
            where.append(
                f"s.id IN (SELECT a.story_id FROM {self.dialect.search_source()} WHERE {self.dialect.search_match()})"
            )
            where_params.append(search_text(self.dialect, fts_query(query)))
        try:
            rows = self._query(
                "SELECT s.id, s.headline, s.sources, s.articles, s.first_seen, s.last_seen,"
                f" (SELECT {self.dialect.text_agg('m.topic', ',', distinct=True)} {standing}) AS topics,"
                f" (SELECT m.snippet {standing} ORDER BY m.score DESC, a.id LIMIT 1) AS snippet"
                f" FROM stories s WHERE {' AND '.join(where)} ORDER BY s.last_seen DESC, s.id DESC LIMIT ? OFFSET ?",
                [*params, *params, *where_params, limit, offset],
            )
        except (sqlite3.OperationalError, StoreError) as e:
            raise StoreError(
                f'cannot search for {query!r}: {e} (FTS5 query syntax: words, "phrases", AND, OR, NOT, prefix*)'
            ) from e
        for row in rows:
            row["topics"] = sorted(set((row["topics"] or "").split(","))) if row["topics"] else []
        return rows

    def story_page(self, story_id: int) -> dict[str, Any] | None:
        """A story (a merged one answers as the story it went into) with its articles, each with its sources and
        standing matches (and the label given, if any)."""
        seen: set[int] = set()
        while True:
            rows = self._query(
                "SELECT id, headline, sources, articles, first_seen, last_seen, merged_into FROM stories WHERE id = ?",
                [story_id],
            )
            if not rows:
                return None
            story = rows[0]
            if story["merged_into"] is None or story["merged_into"] in seen:
                break
            seen.add(story_id)
            story_id = story["merged_into"]
        articles = self._query(
            "SELECT a.id, a.title, a.url, a.published_at, a.fetched_at, a.story_pinned, substr(a.body, 1, 400) AS lead,"
            f" {self.dialect.feed_names('a', as_json=True)} AS feeds FROM articles a WHERE a.story_id = ?"
            " ORDER BY coalesce(a.published_at, a.fetched_at), a.id",
            [story_id],
        )
        matches = self._query(
            f"SELECT m.article_id, m.topic, m.terms, m.snippet, m.score, {LABEL_OF} AS label"
            " FROM matches m JOIN articles a ON a.id = m.article_id"
            " WHERE a.story_id = ? AND m.retracted_at IS NULL ORDER BY m.topic",
            [story_id],
        )
        by_article: dict[int, list[dict[str, Any]]] = {}
        for m in matches:
            by_article.setdefault(m["article_id"], []).append(m)
        for article in articles:
            article["matches"] = by_article.get(article["id"], [])
        story["items"] = articles
        return story

    def story_matches(self, story_id: int, topic: str) -> list[int]:
        """The articles of a story with a standing match for `topic` (what a verdict on the story labels)."""
        return [
            row[0]
            for row in self.db.conn.execute(
                "SELECT m.article_id FROM matches m JOIN articles a ON a.id = m.article_id"
                " WHERE a.story_id = ? AND m.topic = ? AND m.retracted_at IS NULL",
                (story_id, topic),
            )
        ]

    # --- the teaching queue -----------------------------------------------------------------------------------

    def teaching_queue(self, *, topic: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Held-back and possible matches not yet labelled for their topic, possible ones first, newest first."""
        where, params = (
            ["NOT EXISTS (SELECT 1 FROM labels l WHERE l.article_id = c.article_id AND l.topic = c.topic)"],
            [],
        )
        if topic:
            where.append("c.topic = ?")
            params.append(topic)
        rows = self._query(
            "SELECT c.article_id, c.topic, c.verdict, c.probability, c.rule_score, c.terms, c.snippet, c.features,"
            f" c.decided_at, a.title, a.url, a.published_at, {self.dialect.feed_names('a', as_json=True)} AS feeds"
            f" FROM model_calls c JOIN articles a ON a.id = c.article_id WHERE {' AND '.join(where)}"
            " ORDER BY c.verdict = 'held', c.decided_at DESC, c.article_id DESC LIMIT ?",
            [*params, limit],
        )
        for row in rows:
            row["features"] = [tuple(f) for f in json.loads(row["features"] or "[]")]
        return rows

    def model_calls_of(self, article_id: int) -> list[dict[str, Any]]:
        """An article's held-back and possible matches not yet labelled (its page offers to confirm them)."""
        rows = self._query(
            "SELECT c.topic, c.verdict, c.probability, c.features FROM model_calls c WHERE c.article_id = ? AND NOT EXISTS"
            " (SELECT 1 FROM labels l WHERE l.article_id = c.article_id AND l.topic = c.topic) ORDER BY c.topic",
            [article_id],
        )
        for row in rows:
            row["features"] = [tuple(f) for f in json.loads(row["features"] or "[]")]
        return rows

    # --- feeds ---------------------------------------------------------------------------------------------------

    def feed_pages(self, since: datetime) -> dict[str, tuple[int, int]]:
        """feed name -> (articles stored since `since`, of which the page was not read: blocked by the address
        guard, too big, failed or without text, so the feed's own text stood in)."""
        rows = self.db.conn.execute(
            "SELECT f.name, count(*), sum(CASE WHEN a.body_source != 'page' THEN 1 ELSE 0 END) FROM article_sources s"
            " JOIN feeds f ON f.id = s.feed_id JOIN articles a ON a.id = s.article_id"
            " WHERE s.seen_at >= ? GROUP BY f.name",
            (to_db_time(since),),
        )
        return {name: (int(n), int(unread or 0)) for name, n, unread in rows}

    # --- what a label changes -----------------------------------------------------------------------------------

    def skip_pending_alerts(self, article_id: int, topic: str, reason: str) -> int:
        """A match labelled "not relevant": its alerts not yet sent are not sent. Returns how many."""
        with self._write() as conn:
            return conn.execute(
                "UPDATE deliveries SET status = 'skipped', last_error = ? WHERE article_id = ? AND topic = ?"
                " AND status = 'pending'",
                (reason[:500], article_id, topic),
            ).rowcount

    def confirm_model_call(
        self, article_id: int, topic: str, now: datetime, routes: Mapping[str, Sequence[str]]
    ) -> tuple[str, int]:
        """A held-back or possible match the analyst says is right becomes a match, in one transaction: the match
        row (the call's terms and snippet), the article counted as matched, the call removed. A held-back match was
        never alerted: its alerts are queued on `routes` now; a possible one was shown in a digest already.
        Returns (the call's verdict, alerts queued)."""
        stamp = to_db_time(now)
        with self._write() as conn:
            row = conn.execute(
                "SELECT verdict, rule_score, probability, terms, snippet FROM model_calls WHERE article_id = ? AND topic = ?",
                (article_id, topic),
            ).fetchone()
            if row is None:
                raise StoreError(f"no held-back or possible match of article {article_id} for topic {topic!r}")
            verdict, rule_score, probability, terms, snippet = row
            conn.execute(
                "INSERT INTO matches (article_id, topic, score, terms, snippet, matched_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (article_id, topic) DO UPDATE SET retracted_at = NULL, matched_at = excluded.matched_at",
                (article_id, topic, rule_score or probability, terms, snippet, stamp),
            )
            conn.execute("UPDATE articles SET matched = 1 WHERE id = ?", (article_id,))
            conn.execute("DELETE FROM model_calls WHERE article_id = ? AND topic = ?", (article_id, topic))
            queued = 0
            if verdict == "held":
                for channel in routes.get(topic, ()):
                    queued += conn.execute(
                        "INSERT INTO deliveries (article_id, topic, channel, created_at, next_attempt_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (article_id, topic, channel, stamp, stamp),
                    ).rowcount
        return str(verdict), queued

    def labels_of(self, pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], str]:
        """(article id, topic) -> "yes" | "no" for the pairs labelled."""
        found: dict[tuple[int, str], str] = {}
        ids = sorted({a for a, _ in pairs})
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = f"SELECT article_id, topic, label FROM labels WHERE article_id IN ({','.join('?' * len(chunk))})"
            for article_id, topic, label in self.db.conn.execute(sql, chunk):
                found[(article_id, topic)] = label
        return found
