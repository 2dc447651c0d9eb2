"""Feeds, their schedule and the writes of one poll: what the pipeline and the daemon ask of the store."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..config import FeedConfig
from ..models import Article, FeedRecord, FeedUpdate, Match
from ..text import hide_credentials
from .base import placeholders, to_db_time
from .grouped import GroupedPollWrites
from .labels import record_model_calls
from .stories import StoryQueries

# The key of the lock under which workers sync the config's feeds one at a time (dialect.one_at_a_time); any
# constant distinct from the migrations' lock (postgres.py).
SYNC_LOCK = 0x77617463_68657202


class FeedQueries(StoryQueries):
    _grouped_polls: GroupedPollWrites | None = None  # made on the first write_poll, in the loop that awaits it

    # --- feeds -----------------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[FeedConfig], default_interval: timedelta, now: datetime) -> None:
        """Make the feeds table follow the config: add new feeds (due now), update changed ones, disable removed ones.

        Feeds are matched by name, so editing a feed's URL keeps its history. A removed feed keeps its rows
        (its articles stay searchable) and is only disabled. URLs are stored without credentials (a token in a
        private feed's URL must not end up in a file users share); the pipeline polls the config's URL.
        """
        stamp = to_db_time(now)
        with self._write() as conn:
            # Workers starting or reloading together sync one after the other: each then finds the rows the one
            # before it wrote (READ COMMITTED reads them once the lock is held), and changes nothing twice.
            serialise = self.dialect.one_at_a_time(SYNC_LOCK)
            if serialise:
                conn.execute(serialise)
            names = []
            for feed in feeds:
                names.append(feed.name)
                url = hide_credentials(feed.url)
                interval = int((feed.interval or default_interval).total_seconds())
                row = conn.execute("SELECT id, url FROM feeds WHERE name = ?", (feed.name,)).fetchone()
                if row is None:
                    # A URL that moved to a new name keeps its row too.
                    conn.execute("DELETE FROM feeds WHERE url = ? AND enabled = 0", (url,))
                    conn.execute(
                        "INSERT INTO feeds (name, url, enabled, extract, interval_s, added_at, next_check_at)"
                        # A row another writer added meanwhile under this name stands.
                        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                        (feed.name, url, int(feed.enabled), int(feed.extract), interval, stamp, stamp),
                    )
                else:
                    url_changed = row[1] != url
                    conn.execute(
                        "UPDATE feeds SET url = ?, enabled = ?, extract = ?, interval_s = ?"
                        + (
                            ", etag = NULL, last_modified = NULL, next_check_at = ?, moved_to = NULL"
                            if url_changed
                            else ""
                        )
                        + " WHERE id = ?",
                        (url, int(feed.enabled), int(feed.extract), interval)
                        + ((stamp,) if url_changed else ())
                        + (row[0],),
                    )
            placeholders = ",".join("?" * len(names))
            conn.execute(f"UPDATE feeds SET enabled = 0 WHERE name NOT IN ({placeholders})", names)

    def due_feeds(
        self, now: datetime, *, names: Sequence[str] | None = None, limit: int | None = None
    ) -> list[FeedRecord]:
        """Enabled feeds whose next check is due, most overdue first; with `names`, those feeds whatever their time."""
        if names is not None:
            where = f"enabled = 1 AND name IN ({placeholders(names)})"
            params: list[Any] = list(names)
        else:
            where, params = "enabled = 1 AND next_check_at <= ?", [to_db_time(now)]
        sql = f"SELECT * FROM feeds WHERE {where} ORDER BY next_check_at" + (f" LIMIT {int(limit)}" if limit else "")
        return [_feed_record(r) for r in self._query(sql, params)]

    def seen_entry_ids(self, feed_id: int, entry_ids: Sequence[str]) -> set[str]:
        sql = "SELECT entry_id FROM seen_entries WHERE feed_id = ? AND entry_id IN"
        return {row[0] for row in self._select_in(sql, entry_ids, [feed_id])}

    def stored_article_urls(self, urls: Sequence[str]) -> set[str]:
        return {row[0] for row in self._select_in("SELECT url FROM articles WHERE url IN", urls)}

    def known_entries(self, feed_id: int, entries: Sequence[tuple[str, str]]) -> tuple[set[str], set[str]]:
        """What a changed feed's poll asks before fetching pages, in one call (one trip to the store's thread):
        of these (entry id, article URL) pairs, the ids this feed has seen, and the URLs of the others that are
        stored already (from another feed, or a moved item of this one)."""
        seen = self.seen_entry_ids(feed_id, [entry_id for entry_id, _ in entries])
        return seen, self.stored_article_urls([url for entry_id, url in entries if entry_id not in seen])

    # --- one feed update, one transaction ----------------------------------------------------------------

    def apply_update(
        self,
        feed_id: int,
        update: FeedUpdate,
        routes: Mapping[str, Sequence[str]],
        possible_routes: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """Write everything one poll changed; returns the number of deliveries queued.

        `routes` maps a topic to the channels that want it. The deliveries of a match are written in the same
        transaction as the match, so a crash can lose neither one without the other. `possible_routes` maps a
        topic to its digest channels, where its possible matches (learn/) are shown.
        """
        now = to_db_time(update.checked_at)
        queued = 0
        terms: Counter[str] = Counter()  # this write's story term counts, kept in memory once it commits
        with self._write() as conn:
            self._record_poll(conn, feed_id, update)
            touched: set[int] = set()  # stories whose sources changed
            # Rows are locked in one order by every writer (articles by URL, then stories, then terms), so two
            # workers writing feeds that share articles wait for each other instead of deadlocking (PostgreSQL).
            for article in sorted(update.articles, key=lambda a: a.url):
                article_id, story_id = self._insert_article(conn, article, now)
                self._add_source(conn, article_id, feed_id, article.entry.entry_id, article.entry.link, now)
                # Before the matches: their alerts are queued once per story (docs/stories.md).
                if story_id is None:  # new here (a stored article keeps its story)
                    story_id = self._place_in_story(conn, article_id, article, update.checked_at, terms)
                touched.add(story_id)
                for match in article.matches:
                    queued += self._insert_match(conn, article_id, match, now, routes if update.alert else {})
                if article.model_calls:
                    calls_routes = (possible_routes or {}) if update.alert else {}
                    queued += record_model_calls(conn, article_id, article.model_calls, now, calls_routes)
            for url, entry in update.also_seen_at:
                row = conn.execute("SELECT id, story_id FROM articles WHERE url = ?", (url,)).fetchone()
                if row:
                    self._add_source(conn, row[0], feed_id, entry.entry_id, entry.link, now)
                    if row[1] is not None:
                        touched.add(row[1])
            for story_id in sorted(touched):
                self._refresh_story(conn, story_id, update.checked_at)
            terms_written = self._write_term_counts_when_due(conn, terms)
            if update.articles:
                self._prune_story_index(conn, update.checked_at)
        self._counts_committed(terms, terms_written)
        return queued

    async def write_poll(
        self,
        feed_id: int,
        update: FeedUpdate,
        routes: Mapping[str, Sequence[str]],
        possible_routes: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """`apply_update` from the event loop, on the store's thread. A poll that brought no article is written
        together with the others that end about the same time (grouped.py): one handoff and one transaction."""
        if update.articles or update.also_seen_at:
            return await self.call(self.apply_update, feed_id, update, routes, possible_routes)
        if self._grouped_polls is None:
            self._grouped_polls = GroupedPollWrites(lambda group: self.call(self.record_polls, group))
        await self._grouped_polls.write(feed_id, update)
        return 0

    def record_polls(self, polls: Sequence[tuple[int, FeedUpdate]]) -> None:
        """Polls that brought no article, in one transaction: each feed's state, lease and seen entries."""
        if any(u.articles or u.also_seen_at for _, u in polls):
            raise ValueError("a poll that brought articles is written by apply_update, with its stories")
        with self._write() as conn:
            for feed_id, update in sorted(polls, key=lambda p: p[0]):  # rows locked in one order by every writer
                self._record_poll(conn, feed_id, update)

    def _record_poll(self, conn: sqlite3.Connection, feed_id: int, update: FeedUpdate) -> None:
        self._write_feed_state(conn, feed_id, update)
        conn.executemany(
            "INSERT INTO seen_entries (feed_id, entry_id, seen_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(feed_id, eid, to_db_time(update.checked_at)) for eid in update.seen_entry_ids],
        )

    def record_offline(self, feeds: Sequence[tuple[int, datetime]]) -> None:
        """Feeds whose last failure turned out to be part of a network outage: not their fault after all.

        Their error is taken back from the count and they keep their plain interval (`next_check_at` given per
        feed); a feed that has been polled again meanwhile (no longer 'error') is left alone."""
        with self._write() as conn:
            conn.executemany(
                f"UPDATE feeds SET error_count = {self.dialect.greatest('error_count - 1', '0')}, last_status = 'offline',"
                " last_error_kind = 'offline', next_check_at = ? WHERE id = ? AND last_status = 'error'",
                [(to_db_time(next_check), feed_id) for feed_id, next_check in feeds],
            )

    def _write_feed_state(self, conn: sqlite3.Connection, feed_id: int, u: FeedUpdate) -> None:
        # The poll is recorded: the worker's lease on the feed ends in the same statement (leases.py). Whoever
        # holds it, since the next check just moved on and the feed is not due for anyone.
        if u.status in ("error", "offline"):
            # "offline" (the whole network is down) is recorded but not counted against the feed.
            conn.execute(
                "UPDATE feeds SET last_checked_at = ?, next_check_at = ?, error_count = error_count + ?,"
                " last_error = ?, last_error_kind = ?, last_status = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ?",
                (
                    to_db_time(u.checked_at),
                    to_db_time(u.next_check_at),
                    int(u.status == "error"),
                    u.error,
                    u.error_kind,
                    u.status,
                    feed_id,
                ),
            )
            return
        conn.execute(
            "UPDATE feeds SET last_checked_at = :now, last_success_at = :now, next_check_at = :next,"
            " first_polled_at = coalesce(first_polled_at, :now), error_count = 0, last_error = NULL,"
            " last_error_kind = NULL, last_status = :status, etag = :etag, last_modified = :lm,"
            " title = coalesce(:title, title), moved_to = coalesce(:moved, moved_to), last_warning = :warning,"
            " lease_owner = NULL, lease_until = NULL WHERE id = :id",
            {
                "now": to_db_time(u.checked_at),
                "next": to_db_time(u.next_check_at),
                "status": u.status,
                "etag": u.etag,
                "lm": u.last_modified,
                "title": u.title,
                "moved": hide_credentials(u.new_url) if u.new_url else None,
                "warning": u.warning,
                "id": feed_id,
            },
        )

    def _insert_article(self, conn: sqlite3.Connection, a: Article, now: str) -> tuple[int, int | None]:
        """The article's id, and its story when it was stored already (another feed's copy, a re-run)."""
        row = conn.execute(
            "INSERT INTO articles (url, title, body, body_source, author, language, published_at, fetched_at, matched,"
            " page_outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT(url) DO UPDATE SET matched = {self.dialect.greatest('articles.matched', 'excluded.matched')}"
            " RETURNING id, story_id",
            (
                a.url,
                a.title,
                a.body,
                a.body_source,
                a.author,
                a.language,
                to_db_time(a.published_at),
                now,
                int(bool(a.matches)),
                a.page_outcome,
            ),
        ).fetchone()
        return row[0], row[1]

    def _add_source(
        self, conn: sqlite3.Connection, article_id: int, feed_id: int, entry_id: str, link: str | None, now: str
    ) -> None:
        conn.execute(
            "INSERT INTO article_sources (article_id, feed_id, entry_id, link, seen_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (article_id, feed_id, entry_id, link, now),
        )

    def _insert_match(
        self, conn: sqlite3.Connection, article_id: int, match: Match, now: str, routes: Mapping[str, Sequence[str]]
    ) -> int:
        cursor = conn.execute(
            "INSERT INTO matches (article_id, topic, score, terms, snippet, matched_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(article_id, topic) DO UPDATE SET retracted_at = NULL, score = excluded.score,"
            " terms = excluded.terms, snippet = excluded.snippet",
            (
                article_id,
                match.topic,
                match.score,
                json.dumps(list(match.terms), ensure_ascii=False),
                match.snippet,
                now,
            ),
        )
        queued = 0
        for channel in routes.get(match.topic, ()):
            cursor = conn.execute(
                "INSERT INTO deliveries (article_id, topic, channel, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (article_id, match.topic, channel, now, now),
            )
            queued += cursor.rowcount
        return queued

    def apply_rematch(
        self,
        results: Sequence[tuple[int, Sequence[Match]]],
        topics: Sequence[str],
        routes: Mapping[str, Sequence[str]],
        now: datetime,
    ) -> tuple[int, int, int]:
        """Write new rules' verdicts for a batch of articles: (added, retracted, queued).

        A topic that no longer matches is marked retracted, never deleted (users may have acted on it); a topic
        that matches anew is added and queues its alerts; the outbox's unique key keeps earlier alerts from
        being queued again.
        """
        stamp = to_db_time(now)
        added = retracted = queued = 0
        with self._write() as conn:
            for article_id, matches in results:
                current = {
                    row[0]: row[1]
                    for row in conn.execute(
                        "SELECT topic, retracted_at FROM matches WHERE article_id = ?", (article_id,)
                    )
                }
                matched_now = {m.topic for m in matches}
                for match in matches:
                    if match.topic not in current or current[match.topic] is not None:
                        added += 1
                    queued += self._insert_match(conn, article_id, match, stamp, routes)
                for topic in topics:
                    if topic in current and current[topic] is None and topic not in matched_now:
                        conn.execute(
                            "UPDATE matches SET retracted_at = ? WHERE article_id = ? AND topic = ?",
                            (stamp, article_id, topic),
                        )
                        # Alerts not yet sent for a retracted match are not sent.
                        conn.execute(
                            "UPDATE deliveries SET status = 'skipped', last_error = 'match retracted by rematch'"
                            " WHERE article_id = ? AND topic = ? AND status = 'pending'",
                            (article_id, topic),
                        )
                        retracted += 1
                conn.execute(
                    "UPDATE articles SET matched = CASE WHEN EXISTS (SELECT 1 FROM matches WHERE article_id = ? AND retracted_at IS NULL)"
                    " THEN 1 ELSE 0 END"
                    " WHERE id = ?",
                    (article_id, article_id),
                )
        return added, retracted, queued

    # --- maintenance -----------------------------------------------------------------------------------

    def purge_unmatched(self, older_than: datetime) -> int:
        """Drop unmatched articles kept for `rematch` once they are older than the window; their ids stay seen."""
        with self._write() as conn:
            gone = conn.execute(
                "DELETE FROM articles WHERE matched = 0 AND fetched_at < ?"
                # held-back and possible matches stay, like matches, for the analyst to confirm or dismiss
                " AND NOT EXISTS (SELECT 1 FROM model_calls c WHERE c.article_id = articles.id) RETURNING story_id",
                (to_db_time(older_than),),
            ).fetchall()
            for story_id in {row[0] for row in gone if row[0] is not None}:
                self._refresh_story(conn, story_id, older_than)  # its counts drop; last_seen stays
            return len(gone)

    # --- reading for the CLI ---------------------------------------------------------------------------

    def feed_status(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT f.name, f.url, f.enabled, f.last_status, f.last_success_at, f.next_check_at, f.error_count,"
            " f.last_error, f.last_error_kind, f.moved_to, h.matches, h.pages_tried, h.pages_walled, h.walls"
            " FROM feeds f JOIN feed_health h ON h.name = f.name ORDER BY f.name"
        )

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.db.conn.execute(sql).fetchone()[0]
        return {
            "feeds": one("SELECT count(*) FROM feeds WHERE enabled = 1"),
            "articles": one("SELECT count(*) FROM articles WHERE matched = 1"),
            "matches": one("SELECT count(*) FROM matches WHERE retracted_at IS NULL"),
            "pending": one("SELECT count(*) FROM deliveries WHERE status = 'pending'"),
            "dead": one("SELECT count(*) FROM deliveries WHERE status = 'dead'"),
        }

    def feed_facts(self) -> list[dict[str, Any]]:
        """Per feed, what the health verdict weighs: enabled, errors in a row, last status and error kind, times."""
        return self._query(
            "SELECT name, enabled, error_count, last_status, last_error_kind, last_checked_at, last_success_at,"
            " next_check_at FROM feeds ORDER BY name"
        )


def _feed_record(row: Mapping[str, Any]) -> FeedRecord:
    return FeedRecord(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        interval=timedelta(seconds=row["interval_s"]),
        extract=bool(row["extract"]),
        etag=row["etag"],
        last_modified=row["last_modified"],
        error_count=row["error_count"],
        first_poll=row["first_polled_at"] is None,
    )
