"""Stories: placing each new article in a story inside the transaction that writes it, and the analyst's fixes.

The index (docs/stories.md): `story_keys` holds each article's rarest terms with the time it was stored, for the
window only (older rows are pruned), so finding the candidates of a new article is a few index range reads
whatever the size of the store. `story_terms` counts how many articles carry each term: the document frequencies
that make a shared "Kramatorsk" count and a shared "Ukraine" not. The decision itself is watcher/stories.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ..errors import StoreError
from ..models import Article
from ..stories import CANDIDATES, COLD_START_DOCUMENTS, StoryCandidate, StorySettings, StoryText, decide_story
from .base import Connection, _chunks, from_db_time, placeholders, to_db_time
from .dialect import Dialect

DOCUMENTS = ""  # the story_terms row whose df counts every article
POSTINGS_PER_KEY = 200
# Articles whose term counts are added up in memory before they are written in one go. Written one article at a
# time, its ~60 counts land on as many pages of a large story_terms (the longest part of a new article's write in
# a store of 1M: bench/growth.py); a batch writes each page once. A crash forgets at most this many articles'
# counts: frequencies a hair low, which is all the decision would notice.
TERM_COUNTS_EVERY = 200


class StoryQueries(Connection):
    story_settings: StorySettings = StorySettings()
    # Term counts of committed articles not yet in story_terms. A write's own counts join them only once it commits
    # (`_counts_committed`), so a write that fails or is retried never counts its articles twice.
    _uncounted: Counter[str] | None = None

    def close(self) -> None:
        if self._uncounted:
            if self._thread is not None:  # the store thread's last calls first: they may count more terms
                self._thread.shutdown(wait=True)
                self._thread = None
            try:
                with self._write() as conn:
                    self._write_term_counts(conn, self._uncounted)
                self._uncounted = None
            except StoreError:
                pass  # a database that cannot be written now: the counts drift a little low, as after a crash
        super().close()

    def configure_stories(self, window: timedelta) -> None:
        self.story_settings = StorySettings(window=window, threshold=StorySettings().threshold)

    # --- inside apply_update's transaction -------------------------------------------------------------------

    def _place_in_story(
        self, conn: sqlite3.Connection, article_id: int, article: Article, now: datetime, pending: Counter[str]
    ) -> int:
        """The story of a just-written article that has none yet: a recent one it reports, or a new one.

        Its terms are added to `pending`, this write's counts, which the next article of the write finds beside the
        committed ones kept in memory (`_uncounted`); apply_update writes them all once TERM_COUNTS_EVERY are kept."""
        text = StoryText.of(article.title, article.body, article.published_at or now)
        if self.story_settings.window <= timedelta(0):  # stories turned off: each article its own
            story_id = _new_story(conn, article, now)
            conn.execute("UPDATE articles SET story_id = ? WHERE id = ?", (story_id, article_id))
            return story_id
        uncounted = self._uncounted or Counter()
        df = _frequencies(conn, text.terms)
        for term in (*text.terms, DOCUMENTS):
            if term in uncounted or term in pending:
                df[term] = df.get(term, 0) + uncounted[term] + pending[term]
        documents = df.pop(DOCUMENTS, 0)
        keys = text.index_keys(df)
        since = to_db_time(now - self.story_settings.window)
        candidates = _candidates(conn, self.dialect, keys, since, article_id)
        decision = decide_story(text, candidates, df, documents, now, self.story_settings)
        stamp = to_db_time(now)
        joined = _live_story(conn, decision.story_id) if decision.story_id is not None else None
        story_id = joined if joined is not None else _new_story(conn, article, now)
        published = to_db_time(text.published_at) if text.published_at else None
        weighed = text.weighed(df, max(documents, COLD_START_DOCUMENTS))
        kept = [published, sorted(text.title_terms), sorted(text.terms), weighed.weight, weighed.title_weight]
        conn.execute(
            "UPDATE articles SET story_id = ?, story_terms = ? WHERE id = ?",
            (story_id, json.dumps(kept), article_id),
        )
        conn.executemany(
            "INSERT INTO story_keys (key, seen_at, article_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(key, stamp, article_id) for key in sorted(keys)],
        )
        pending.update(text.terms)
        pending[DOCUMENTS] += 1
        return int(story_id)

    def _write_term_counts_when_due(self, conn: sqlite3.Connection, pending: Counter[str]) -> bool:
        """At the end of a feed's write: the counts kept and this write's, once there are enough; True when written.
        Last, so that every writer takes its row locks in one order (articles, stories, then terms) and workers
        sharing a PostgreSQL database cannot deadlock on them; and rarely, so they seldom wait on the rows every
        article touches (DOCUMENTS, "said")."""
        kept = self._uncounted[DOCUMENTS] if self._uncounted else 0
        if kept + pending[DOCUMENTS] < TERM_COUNTS_EVERY:
            return False
        self._write_term_counts(conn, (self._uncounted or Counter()) + pending)
        return True

    def _counts_committed(self, pending: Counter[str], written: bool) -> None:
        """After a write commits: its counts join those kept in memory, or all of them are in story_terms now."""
        if written:
            self._uncounted = None
        elif pending:
            if self._uncounted is None:
                self._uncounted = Counter()
            self._uncounted.update(pending)

    def _write_term_counts(self, conn: sqlite3.Connection, counts: Counter[str]) -> None:
        """Add `counts` to story_terms, in the caller's transaction (in term order: each page of the table is
        written once, and two writers lock the rows in the same order)."""
        conn.executemany(
            "INSERT INTO story_terms (term, df) VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET df = story_terms.df + excluded.df",
            sorted(counts.items()),
        )

    def _refresh_story(self, conn: sqlite3.Connection, story_id: int, now: datetime) -> None:
        """Recount a story's articles and sources (feeds) after a write. Its headline is the title of its earliest
        article by publication time (the outlet that broke it): feeds polled together arrive in any order."""
        conn.execute(
            "UPDATE stories SET articles = (SELECT count(*) FROM articles WHERE story_id = :id),"
            " headline = coalesce((SELECT title FROM articles WHERE story_id = :id AND title != ''"
            "            ORDER BY coalesce(published_at, fetched_at), id LIMIT 1), headline),"
            " sources = (SELECT count(DISTINCT s.feed_id) FROM article_sources s JOIN articles a ON a.id = s.article_id"
            "            WHERE a.story_id = :id),"
            f" last_seen = {self.dialect.greatest('last_seen', ':now')} WHERE id = :id",
            {"id": story_id, "now": to_db_time(now)},
        )

    def _prune_story_index(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Index rows older than the window can never be candidates again: keep the index the window's size."""
        conn.execute("DELETE FROM story_keys WHERE seen_at < ?", (to_db_time(now - self.story_settings.window),))

    # --- the analyst's fixes ------------------------------------------------------------------------------------

    def merge_stories(self, into: int, other: int, now: datetime) -> int:
        """Move every article of `other` into `into` (both pinned there); returns the articles moved."""
        with self._write() as conn:
            target, source = _live_story(conn, into), _live_story(conn, other)
            if target is None or source is None:
                raise StoreError(f"no such story: {into if target is None else other}")
            if target == source:
                return 0
            moved = conn.execute(
                "UPDATE articles SET story_id = ?, story_pinned = 1 WHERE story_id = ?", (target, source)
            ).rowcount
            conn.execute("UPDATE articles SET story_pinned = 1 WHERE story_id = ?", (target,))
            conn.execute("UPDATE stories SET merged_into = ?, articles = 0, sources = 0 WHERE id = ?", (target, source))
            conn.execute(
                f"UPDATE stories SET first_seen = {self.dialect.least('first_seen', '(SELECT first_seen FROM stories WHERE id = ?)')}"
                " WHERE id = ?",
                (source, target),
            )
            self._refresh_story(conn, target, now)
            return moved

    def split_article(self, article_id: int, now: datetime) -> int:
        """Take an article out of its story into a story of its own, pinned; returns the new story's id."""
        with self._write() as conn:
            row = conn.execute("SELECT title, url, story_id FROM articles WHERE id = ?", (article_id,)).fetchone()
            if row is None:
                raise StoreError(f"no such article: {article_id}")
            stamp = to_db_time(now)
            new_id = conn.execute(
                "INSERT INTO stories (headline, first_seen, last_seen) VALUES (?, ?, ?) RETURNING id",
                (row[0] or row[1], stamp, stamp),
            ).fetchone()[0]
            conn.execute("UPDATE articles SET story_id = ?, story_pinned = 1 WHERE id = ?", (new_id, article_id))
            # Its index keys go: later versions of the story it left must not be drawn to it.
            conn.execute("DELETE FROM story_keys WHERE article_id = ?", (article_id,))
            self._refresh_story(conn, new_id, now)
            if row[2] is not None:
                self._refresh_story(conn, row[2], now)
            return int(new_id)

    # --- reading -----------------------------------------------------------------------------------------------

    def list_stories(
        self, *, topic: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Stories newest first, each with its sources (feed, title, link, time) and topics."""
        where, params = ["s.merged_into IS NULL", "s.articles > 0"], []
        if since is not None:
            where.append("s.last_seen >= ?")
            params.append(to_db_time(since))
        if topic is not None:
            where.append(
                "EXISTS (SELECT 1 FROM articles a JOIN matches m ON m.article_id = a.id"
                " WHERE a.story_id = s.id AND m.topic = ? AND m.retracted_at IS NULL)"
            )
            params.append(topic)
        stories = self._query(
            "SELECT s.id, s.headline, s.sources, s.articles, s.first_seen, s.last_seen,"
            f" (SELECT {self.dialect.text_agg('m.topic', ',', distinct=True)} FROM articles a JOIN matches m ON m.article_id = a.id"
            "   WHERE a.story_id = s.id AND m.retracted_at IS NULL) AS topics"
            f" FROM stories s WHERE {' AND '.join(where)} ORDER BY s.last_seen DESC, s.id DESC LIMIT ?",
            [*params, limit],
        )
        for story in stories:
            story["topics"] = sorted((story["topics"] or "").split(",")) if story["topics"] else []
            story["reports"] = self.story_sources(story["id"])
        return stories

    def story_sources(self, story_id: int) -> list[dict[str, Any]]:
        """Every (article, feed) of a story, earliest first."""
        return self._query(
            "SELECT a.id AS article_id, a.title, a.url, coalesce(a.published_at, s.seen_at) AS at, f.name AS feed"
            " FROM articles a JOIN article_sources s ON s.article_id = a.id JOIN feeds f ON f.id = s.feed_id"
            " WHERE a.story_id = ? ORDER BY at, a.id, f.name",
            [story_id],
        )


def _frequencies(conn: sqlite3.Connection, terms: frozenset[str] | set[str]) -> dict[str, int]:
    wanted = [*terms, DOCUMENTS]
    found: dict[str, int] = {}
    for chunk in _chunks(wanted, 500):
        sql = f"SELECT term, df FROM story_terms WHERE term IN ({placeholders(chunk)})"
        found.update(conn.execute(sql, chunk))  # (term, df) rows, taken as pairs in C
    return found


def _candidates(
    conn: sqlite3.Connection, dialect: Dialect, keys: Sequence[str], since: str, article_id: int
) -> list[StoryCandidate]:
    """The stored articles of the window sharing most index keys with the new one (at most CANDIDATES)."""
    if not keys:
        return []
    # Each key's postings are cut to its newest POSTINGS_PER_KEY: a word that many articles of the window carry
    # would otherwise make the lookup grow with the window (measured: 21.7 ms an article with 100k in the window).
    # A same-story version shares several keys, and its rarest ones have short postings.
    hits, params = dialect.newest_postings(keys, since, POSTINGS_PER_KEY)
    rows = conn.execute(
        f"WITH hits(article_id) AS ({hits}),"
        " best AS (SELECT article_id, count(*) AS shared FROM hits WHERE article_id != ?"
        "          GROUP BY article_id ORDER BY shared DESC, article_id DESC LIMIT ?)"
        " SELECT b.article_id, a.story_id, a.story_terms FROM best b JOIN articles a ON a.id = b.article_id"
        " WHERE a.story_id IS NOT NULL ORDER BY b.shared DESC, b.article_id DESC",
        [*params, article_id, CANDIDATES],
    ).fetchall()
    candidates = []
    for found_id, story_id, terms_json in rows:
        try:
            published, title_terms, terms, weight, title_weight = json.loads(terms_json)
        except (TypeError, ValueError):
            continue
        text = StoryText(frozenset(title_terms), frozenset(terms), from_db_time(published), weight, title_weight)
        candidates.append(StoryCandidate(found_id, story_id, text))
    return candidates


def _new_story(conn: sqlite3.Connection, article: Article, now: datetime) -> int:
    stamp = to_db_time(now)
    story_id = conn.execute(
        "INSERT INTO stories (headline, first_seen, last_seen) VALUES (?, ?, ?) RETURNING id",
        (article.title or article.url, stamp, stamp),
    ).fetchone()[0]
    return int(story_id)


def _live_story(conn: sqlite3.Connection, story_id: int | None) -> int | None:
    """Follow merges to the story that lives on; None when there is no such story."""
    seen: set[int] = set()
    while story_id is not None and story_id not in seen:
        seen.add(story_id)
        row = conn.execute("SELECT merged_into FROM stories WHERE id = ?", (story_id,)).fetchone()
        if row is None:
            return None
        if row[0] is None:
            return story_id
        story_id = row[0]
    return None
