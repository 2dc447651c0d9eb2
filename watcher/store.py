"""The one module that speaks SQL: a single SQLite file that users also read (sqlite3 shell, Datasette, pandas).

Durability choices, checked by `Store.health()` and documented in docs/schema.md:
  * WAL, so readers never block the daemon's writes and the daemon never blocks them;
  * synchronous=NORMAL: in WAL mode a crash of the process (kill -9) loses nothing committed and never
    corrupts the file; a power cut may lose the last transactions but still not corrupt it;
  * busy_timeout, so a second writer (`watcher poll` beside the daemon) waits instead of failing;
  * every write transaction starts with BEGIN IMMEDIATE: busy_timeout does not help a read that later
    upgrades to a write, so we take the write lock up front.
Times are stored as UTC ISO 8601 text (`2026-11-26T15:09:10Z`), which sorts and compares as text and which
SQLite's date functions read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from .errors import StoreError
from .migrations import MIGRATIONS
from .models import Article, Delivery, FeedRecord, FeedUpdate
from .text import hide_credentials

BUSY_TIMEOUT_MS = 15_000
_SQLITE_FULL = ("database or disk is full", "disk i/o error")


def to_db_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_db_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class StoreHealth:
    journal_mode: str
    synchronous: str
    busy_timeout_ms: int
    foreign_keys: bool
    schema_version: int
    integrity: str | None = None  # only when asked: integrity_check reads the whole file


class Store:
    """Open with `Store.open(path)`; every method is one statement or one transaction."""

    def __init__(self, db: sqlite_utils.Database, path: str):
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Store:
        path = str(path)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves (see the module docstring).
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(sqlite_utils.Database(conn), path)
            store.migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open database {path}: {e}") from e
        return store

    def close(self) -> None:
        self.db.conn.close()

    # --- transactions and schema ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"database is busy or unwritable: {e}") from e
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                hint = " (is the disk full?)" if any(s in str(e).lower() for s in _SQLITE_FULL) else ""
                raise StoreError(f"database write failed{hint}: {e}") from e
            raise

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def schema_version(self) -> int:
        return self.db.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema {current}, newer than this watcher knows ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._write() as conn:
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def health(self, *, check_integrity: bool = False) -> StoreHealth:
        pragma = lambda name: self.db.conn.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        levels = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return StoreHealth(
            journal_mode=pragma("journal_mode"),
            synchronous=levels.get(pragma("synchronous"), "?"),
            busy_timeout_ms=pragma("busy_timeout"),
            foreign_keys=bool(pragma("foreign_keys")),
            schema_version=self.schema_version(),
            integrity=pragma("integrity_check") if check_integrity else None,
        )

    # --- feeds -----------------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[Any], default_interval: timedelta, now: datetime) -> None:
        """Make the feeds table follow the config: add new feeds (due now), update changed ones, disable removed ones.

        Feeds are matched by name, so editing a feed's URL keeps its history. A removed feed keeps its rows
        (its articles stay searchable) and is only disabled. URLs are stored without credentials (a token in a
        private feed's URL must not end up in a file users share); the pipeline polls the config's URL.
        """
        stamp = to_db_time(now)
        with self._write() as conn:
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
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (feed.name, url, int(feed.enabled), int(feed.extract), interval, stamp, stamp),
                    )
                else:
                    url_changed = row[1] != url
                    conn.execute(
                        "UPDATE feeds SET url = ?, enabled = ?, extract = ?, interval_s = ?"
                        + (", etag = NULL, last_modified = NULL, next_check_at = ?, moved_to = NULL" if url_changed else "")
                        + " WHERE id = ?",
                        (url, int(feed.enabled), int(feed.extract), interval)
                        + ((stamp,) if url_changed else ())
                        + (row[0],),
                    )
            placeholders = ",".join("?" * len(names))
            conn.execute(f"UPDATE feeds SET enabled = 0 WHERE name NOT IN ({placeholders})", names)

    def due_feeds(self, now: datetime, *, names: Sequence[str] | None = None, limit: int | None = None) -> list[FeedRecord]:
        """Enabled feeds whose next check is due, most overdue first; with `names`, those feeds whatever their time."""
        if names is not None:
            where = f"enabled = 1 AND name IN ({','.join('?' * len(names))})"
            params: list[Any] = list(names)
        else:
            where, params = "enabled = 1 AND next_check_at <= ?", [to_db_time(now)]
        sql = f"SELECT * FROM feeds WHERE {where} ORDER BY next_check_at" + (f" LIMIT {int(limit)}" if limit else "")
        return [_feed_record(r) for r in self._query(sql, params)]

    def next_due_at(self) -> datetime | None:
        row = self.db.conn.execute("SELECT min(next_check_at) FROM feeds WHERE enabled = 1").fetchone()
        return from_db_time(row[0])

    def seen_entry_ids(self, feed_id: int, entry_ids: Sequence[str]) -> set[str]:
        seen: set[str] = set()
        for chunk in _chunks(entry_ids, 500):
            sql = f"SELECT entry_id FROM seen_entries WHERE feed_id = ? AND entry_id IN ({','.join('?' * len(chunk))})"
            seen.update(r[0] for r in self.db.conn.execute(sql, [feed_id, *chunk]))
        return seen

    def stored_article_urls(self, urls: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(urls, 500):
            sql = f"SELECT url FROM articles WHERE url IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.db.conn.execute(sql, chunk))
        return found

    # --- one feed update, one transaction ----------------------------------------------------------------

    def apply_update(self, feed_id: int, update: FeedUpdate, routes: Mapping[str, Sequence[str]]) -> int:
        """Write everything one poll changed; returns the number of deliveries queued.

        `routes` maps a topic to the channels that want it. The deliveries of a match are written in the same
        transaction as the match, so a crash can lose neither one without the other.
        """
        now = to_db_time(update.checked_at)
        queued = 0
        with self._write() as conn:
            self._write_feed_state(conn, feed_id, update)
            conn.executemany(
                "INSERT OR IGNORE INTO seen_entries (feed_id, entry_id, seen_at) VALUES (?, ?, ?)",
                [(feed_id, eid, now) for eid in update.seen_entry_ids],
            )
            for article in update.articles:
                article_id = self._insert_article(conn, article, now)
                self._add_source(conn, article_id, feed_id, article.entry.entry_id, article.entry.link, now)
                for match in article.matches:
                    queued += self._insert_match(conn, article_id, match, now, routes if update.alert else {})
            for url, entry in update.also_seen_at:
                row = conn.execute("SELECT id FROM articles WHERE url = ?", (url,)).fetchone()
                if row:
                    self._add_source(conn, row[0], feed_id, entry.entry_id, entry.link, now)
        return queued

    def _write_feed_state(self, conn: sqlite3.Connection, feed_id: int, u: FeedUpdate) -> None:
        if u.status in ("error", "offline"):
            # "offline" (the whole network is down) is recorded but not counted against the feed.
            conn.execute(
                "UPDATE feeds SET last_checked_at = ?, next_check_at = ?, error_count = error_count + ?,"
                " last_error = ?, last_error_kind = ?, last_status = ? WHERE id = ?",
                (to_db_time(u.checked_at), to_db_time(u.next_check_at), int(u.status == "error"), u.error,
                 u.error_kind, u.status, feed_id),
            )
            return
        conn.execute(
            "UPDATE feeds SET last_checked_at = :now, last_success_at = :now, next_check_at = :next,"
            " first_polled_at = coalesce(first_polled_at, :now), error_count = 0, last_error = NULL,"
            " last_error_kind = NULL, last_status = :status, etag = :etag, last_modified = :lm,"
            " title = coalesce(:title, title), moved_to = coalesce(:moved, moved_to), last_warning = :warning"
            " WHERE id = :id",
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

    def _insert_article(self, conn: sqlite3.Connection, a: Article, now: str) -> int:
        row = conn.execute(
            "INSERT INTO articles (url, title, body, body_source, author, language, published_at, fetched_at, matched)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET matched = max(matched, excluded.matched)"
            " RETURNING id",
            (a.url, a.title, a.body, a.body_source, a.author, a.language, to_db_time(a.published_at), now, int(bool(a.matches))),
        ).fetchone()
        return row[0]

    def _add_source(self, conn: sqlite3.Connection, article_id: int, feed_id: int, entry_id: str, link: str | None, now: str) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO article_sources (article_id, feed_id, entry_id, link, seen_at) VALUES (?, ?, ?, ?, ?)",
            (article_id, feed_id, entry_id, link, now),
        )

    def _insert_match(self, conn: sqlite3.Connection, article_id: int, match: Any, now: str, routes: Mapping[str, Sequence[str]]) -> int:
        cursor = conn.execute(
            "INSERT INTO matches (article_id, topic, score, terms, snippet, matched_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(article_id, topic) DO UPDATE SET retracted_at = NULL, score = excluded.score,"
            " terms = excluded.terms, snippet = excluded.snippet",
            (article_id, match.topic, match.score, json.dumps(list(match.terms), ensure_ascii=False), match.snippet, now),
        )
        queued = 0
        for channel in routes.get(match.topic, ()):
            cursor = conn.execute(
                "INSERT OR IGNORE INTO deliveries (article_id, topic, channel, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                (article_id, match.topic, channel, now, now),
            )
            queued += cursor.rowcount
        return queued

    # --- maintenance -----------------------------------------------------------------------------------

    def purge_unmatched(self, older_than: datetime) -> int:
        """Drop unmatched articles kept for `rematch` once they are older than the window; their ids stay seen."""
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM articles WHERE matched = 0 AND fetched_at < ?", (to_db_time(older_than),)
            ).rowcount

    # --- reading for the CLI ---------------------------------------------------------------------------

    def feed_status(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT name, url, enabled, last_status, last_success_at, next_check_at, error_count, last_error,"
            " last_error_kind, moved_to, (SELECT count(*) FROM article_sources s JOIN matches m"
            " ON m.article_id = s.article_id WHERE s.feed_id = f.id AND m.retracted_at IS NULL) AS matches"
            " FROM feeds f ORDER BY name"
        )

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.db.conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "feeds": one("SELECT count(*) FROM feeds WHERE enabled = 1"),
            "articles": one("SELECT count(*) FROM articles WHERE matched = 1"),
            "matches": one("SELECT count(*) FROM matches WHERE retracted_at IS NULL"),
            "pending": one("SELECT count(*) FROM deliveries WHERE status = 'pending'"),
            "dead": one("SELECT count(*) FROM deliveries WHERE status = 'dead'"),
        }

    # --- rematch, search, export ------------------------------------------------------------------------

    def articles_to_rematch(self, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every stored article (matched ones, and unmatched ones still in the keep window), in id batches."""
        last = 0
        while True:
            rows = self._query("SELECT id, title, body FROM articles WHERE id > ? ORDER BY id LIMIT ?", [last, batch])
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]

    def apply_rematch(
        self, results: Sequence[tuple[int, Sequence[Any]]], topics: Sequence[str], routes: Mapping[str, Sequence[str]], now: datetime
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
                    for row in conn.execute("SELECT topic, retracted_at FROM matches WHERE article_id = ?", (article_id,))
                }
                matched_now = {m.topic for m in matches}
                for match in matches:
                    if match.topic not in current or current[match.topic] is not None:
                        added += 1
                    queued += self._insert_match(conn, article_id, match, stamp, routes)
                for topic in topics:
                    if topic in current and current[topic] is None and topic not in matched_now:
                        conn.execute(
                            "UPDATE matches SET retracted_at = ? WHERE article_id = ? AND topic = ?", (stamp, article_id, topic)
                        )
                        # Alerts not yet sent for a retracted match are not sent.
                        conn.execute(
                            "UPDATE deliveries SET status = 'skipped', last_error = 'match retracted by rematch'"
                            " WHERE article_id = ? AND topic = ? AND status = 'pending'",
                            (article_id, topic),
                        )
                        retracted += 1
                conn.execute(
                    "UPDATE articles SET matched = EXISTS (SELECT 1 FROM matches WHERE article_id = ? AND retracted_at IS NULL)"
                    " WHERE id = ?",
                    (article_id, article_id),
                )
        return added, retracted, queued

    def search(
        self,
        query: str,
        *,
        topic: str | None = None,
        feed: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Full-text search (FTS5 syntax) over stored articles, best first, with a snippet around the hits."""
        where, params = ["articles_fts MATCH ?"], [query]
        if topic:
            where.append("EXISTS (SELECT 1 FROM matches m WHERE m.article_id = a.id AND m.topic = ? AND m.retracted_at IS NULL)")
            params.append(topic)
        if feed:
            where.append("EXISTS (SELECT 1 FROM article_sources s JOIN feeds f ON f.id = s.feed_id WHERE s.article_id = a.id AND f.name = ?)")
            params.append(feed)
        if since:
            where.append("coalesce(a.published_at, a.fetched_at) >= ?")
            params.append(to_db_time(since))
        sql = (
            "SELECT a.id, a.title, a.url, a.published_at, snippet(articles_fts, -1, '[[', ']]', '…', 24) AS snippet,"
            " (SELECT group_concat(m.topic, ', ') FROM matches m WHERE m.article_id = a.id AND m.retracted_at IS NULL) AS topics,"
            " (SELECT group_concat(f.name, ', ') FROM article_sources s JOIN feeds f ON f.id = s.feed_id WHERE s.article_id = a.id) AS feeds,"
            " round(bm25(articles_fts, 5.0, 1.0), 3) AS rank"
            f" FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid WHERE {' AND '.join(where)}"
            " ORDER BY rank LIMIT ?"
        )
        try:
            return self._query(sql, [*params, limit])
        except sqlite3.OperationalError as e:
            raise StoreError(f"cannot search for {query!r}: {e} (FTS5 query syntax: words, \"phrases\", AND, OR, NOT, prefix*)") from e

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
            " a.language, a.body_source, (SELECT group_concat(f.name, ', ') FROM article_sources s JOIN feeds f"
            " ON f.id = s.feed_id WHERE s.article_id = a.id) AS feeds"
            f" FROM matches m JOIN articles a ON a.id = m.article_id WHERE {' AND '.join(where)} ORDER BY m.matched_at DESC",
            params,
        )

    # --- the outbox --------------------------------------------------------------------------------------

    def pending_deliveries(self, channel: str, now: datetime, *, topics: Sequence[str] | None = None) -> list[Delivery]:
        """Deliveries of a channel that are waiting and whose retry time has come, oldest first, with their article."""
        params: list[Any] = [channel, to_db_time(now)]
        topic_filter = ""
        if topics is not None:
            topic_filter = f" AND d.topic IN ({','.join('?' * len(topics))})"
            params += list(topics)
        rows = self._query(
            "SELECT d.id, d.article_id, d.topic, d.channel, d.created_at, d.attempts, a.title, a.url, a.published_at,"
            " m.terms, m.snippet, (SELECT json_group_array(f.name) FROM article_sources s JOIN feeds f ON f.id = s.feed_id"
            " WHERE s.article_id = a.id) AS feeds"
            " FROM deliveries d JOIN articles a ON a.id = d.article_id"
            " LEFT JOIN matches m ON m.article_id = d.article_id AND m.topic = d.topic"
            " WHERE d.channel = ? AND d.status = 'pending' AND d.next_attempt_at <= ? AND m.retracted_at IS NULL" + topic_filter +
            " ORDER BY d.created_at, d.id",
            params,
        )
        return [_delivery(r) for r in rows]

    def next_delivery_attempt_at(self, channel: str) -> datetime | None:
        row = self.db.conn.execute(
            "SELECT min(next_attempt_at) FROM deliveries WHERE channel = ? AND status = 'pending'", (channel,)
        ).fetchone()
        return from_db_time(row[0])

    def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        self._set_status(ids, "UPDATE deliveries SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL", [to_db_time(now)])

    def mark_retry(self, ids: Sequence[int], error: str, retry_at: datetime) -> None:
        self._set_status(ids, "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?", [error[:500], to_db_time(retry_at)])

    def mark_dead(self, ids: Sequence[int], error: str) -> None:
        self._set_status(ids, "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_error = ?", [error[:500]])

    def mark_skipped(self, ids: Sequence[int], reason: str) -> None:
        """For deliveries that will never be sent on purpose (a retracted match, a removed channel)."""
        self._set_status(ids, "UPDATE deliveries SET status = 'skipped', last_error = ?", [reason[:500]])

    def _set_status(self, ids: Sequence[int], update_sql: str, params: list[Any]) -> None:
        with self._write() as conn:
            for chunk in _chunks(ids, 500):
                conn.execute(f"{update_sql} WHERE id IN ({','.join('?' * len(chunk))})", [*params, *chunk])

    def retry_dead(self, now: datetime, *, channel: str | None = None, ids: Sequence[int] = ()) -> int:
        """Put dead letters back in the queue (`watcher alerts retry`)."""
        sql, params = "UPDATE deliveries SET status = 'pending', next_attempt_at = ? WHERE status = 'dead'", [to_db_time(now)]
        if channel:
            sql, params = sql + " AND channel = ?", params + [channel]
        if ids:
            sql, params = sql + f" AND id IN ({','.join('?' * len(ids))})", params + list(ids)
        with self._write() as conn:
            return conn.execute(sql, params).rowcount

    def list_deliveries(self, *, status: str | None = None, channel: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ["1=1"], []
        if status:
            where.append("d.status = ?")
            params.append(status)
        if channel:
            where.append("d.channel = ?")
            params.append(channel)
        return self._query(
            "SELECT d.id, d.channel, d.topic, d.status, d.attempts, d.created_at, d.next_attempt_at, d.sent_at,"
            " d.last_error, a.title, a.url FROM deliveries d JOIN articles a ON a.id = d.article_id"
            f" WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT ?",
            [*params, limit],
        )

    def last_digest_at(self, channel: str) -> datetime | None:
        row = self.db.conn.execute("SELECT last_digest_at FROM channel_state WHERE channel = ?", (channel,)).fetchone()
        return from_db_time(row[0]) if row else None

    def set_last_digest_at(self, channel: str, slot: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO channel_state (channel, last_digest_at) VALUES (?, ?)"
                " ON CONFLICT(channel) DO UPDATE SET last_digest_at = excluded.last_digest_at",
                (channel, to_db_time(slot)),
            )

    # --- outbox additions (alerts) ---
    # Used by watcher/alerts/outbox.py (claim) and `watcher digest preview` (recent_matches).

    def claim_deliveries(self, ids: Sequence[int], now: datetime, until: datetime) -> list[int]:
        """Take due pending deliveries for one send: their next attempt moves to `until` (a lease), so a second
        pass or process reading the outbox meanwhile skips them. Returns the ids this call claimed; a send's
        outcome (mark_sent/mark_retry/mark_dead) replaces the lease, a crash lets it expire and the send repeat."""
        claimed: list[int] = []
        with self._write() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    "UPDATE deliveries SET next_attempt_at = ? WHERE status = 'pending' AND next_attempt_at <= ?"
                    f" AND id IN ({','.join('?' * len(chunk))}) RETURNING id",
                    [to_db_time(until), to_db_time(now), *chunk],
                ).fetchall()
                claimed += [r[0] for r in rows]
        return claimed

    def recent_matches(self, since: datetime, *, topics: Sequence[str] | None = None, limit: int = 1000) -> list[Delivery]:
        """Matches (not retracted) made since `since`, newest first, as Delivery values with id 0 and no channel."""
        params: list[Any] = [to_db_time(since)]
        topic_filter = ""
        if topics is not None:
            topic_filter = f" AND m.topic IN ({','.join('?' * len(topics))})"
            params += list(topics)
        rows = self._query(
            "SELECT 0 AS id, m.article_id, m.topic, '' AS channel, m.matched_at AS created_at, 0 AS attempts, a.title,"
            " a.url, a.published_at, m.terms, m.snippet, (SELECT json_group_array(f.name) FROM article_sources s"
            " JOIN feeds f ON f.id = s.feed_id WHERE s.article_id = a.id) AS feeds"
            " FROM matches m JOIN articles a ON a.id = m.article_id"
            " WHERE m.retracted_at IS NULL AND m.matched_at >= ?" + topic_filter +
            " ORDER BY m.matched_at DESC LIMIT ?",
            [*params, limit],
        )
        return [_delivery(r) for r in rows]

    # --- end of outbox additions (alerts) ---

    # --- ops additions ---
    # Used by watcher/ops.py: the health verdict (`/healthz`, `watcher status --check`) and the /metrics gauges.

    def probe_write(self, timeout_s: float = 2.0) -> str | None:
        """None when the database can be written now, else why not.

        Takes the write lock and writes a row on a connection of its own, then rolls back: safe from any thread,
        never inside a caller's transaction, and it catches a read-only file or a lock someone holds for good.
        """
        if self.path == ":memory:":
            return None
        try:
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except sqlite3.Error as e:
            return f"cannot open {self.path}: {e}"
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO channel_state (channel) VALUES (?)", (f"(health probe {id(conn)})",))
            return None
        except sqlite3.Error as e:
            return str(e)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def feed_facts(self) -> list[dict[str, Any]]:
        """Per feed, what the health verdict weighs: enabled, errors in a row, last status and error kind, times."""
        return self._query(
            "SELECT name, enabled, error_count, last_status, last_error_kind, last_checked_at, last_success_at,"
            " next_check_at FROM feeds ORDER BY name"
        )

    def pending_summary(self) -> list[dict[str, Any]]:
        """Pending deliveries per (channel, topic): how many, the oldest, and the oldest that was tried already."""
        return self._query(
            "SELECT channel, topic, count(*) AS n, min(created_at) AS oldest,"
            " min(CASE WHEN attempts > 0 THEN created_at END) AS oldest_tried"
            " FROM deliveries WHERE status = 'pending' GROUP BY channel, topic ORDER BY channel, topic"
        )

    def outbox_by_channel(self) -> list[dict[str, Any]]:
        """Deliveries per channel and status (pending, sent, dead, skipped)."""
        return self._query("SELECT channel, status, count(*) AS n FROM deliveries GROUP BY channel, status ORDER BY channel, status")

    # --- end of ops additions ---


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


def _delivery(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        article_id=row["article_id"],
        topic=row["topic"],
        channel=row["channel"],
        created_at=from_db_time(row["created_at"]),
        attempts=row["attempts"],
        title=row["title"],
        url=row["url"],
        feeds=tuple(json.loads(row["feeds"] or "[]")),
        published_at=from_db_time(row["published_at"]),
        terms=tuple(json.loads(row["terms"] or "[]")),
        snippet=row["snippet"] or "",
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement keeps trigger bodies whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
