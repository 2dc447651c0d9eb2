"""The alert outbox: deliveries due, claims (leases) for a send, outcomes, dead letters, digest slots."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..models import Delivery, StorySource
from .base import Connection, _chunks, from_db_time, placeholders, to_db_time
from .dialect import Dialect


# A delivery's story: its headline, every source, and whether this story was already sent on the channel for the
# topic (then the delivery joins it silently: docs/stories.md).
def _story_columns(dialect: Dialect) -> str:
    source = dialect.json_array("f.name", "a3.url", "a3.title", "coalesce(a3.published_at, s3.seen_at)", "a3.id")
    sources = dialect.json_list(source, "coalesce(a3.published_at, a3.fetched_at), a3.id, f.name")
    return (
        " a.story_id, (SELECT headline FROM stories WHERE id = a.story_id) AS story_headline,"
        f" (SELECT {sources}"
        "   FROM (SELECT * FROM articles WHERE story_id = a.story_id ORDER BY coalesce(published_at, fetched_at), id) a3"
        "   JOIN article_sources s3 ON s3.article_id = a3.id JOIN feeds f ON f.id = s3.feed_id) AS story_sources"
    )


_STORY_ALERTED = (
    " EXISTS (SELECT 1 FROM deliveries d2 JOIN articles a2 ON a2.id = d2.article_id WHERE a2.story_id = a.story_id"
    "   AND d2.topic = d.topic AND d2.channel = d.channel AND d2.status = 'sent' AND d2.id != d.id) AS story_alerted"
)


class OutboxQueries(Connection):
    # --- the outbox --------------------------------------------------------------------------------------

    def pending_deliveries(self, channel: str, now: datetime, *, topics: Sequence[str] | None = None) -> list[Delivery]:
        """Deliveries of a channel that are waiting and whose retry time has come, oldest first, with their article."""
        params: list[Any] = [channel, to_db_time(now)]
        topic_filter = ""
        if topics is not None:
            topic_filter = f" AND d.topic IN ({placeholders(topics)})"
            params += list(topics)
        rows = self._query(
            "SELECT d.id, d.article_id, d.topic, d.channel, d.created_at, d.attempts, a.title, a.url, a.published_at,"
            f" coalesce(m.terms, p.terms) AS terms, coalesce(m.snippet, p.snippet) AS snippet, {self.dialect.feed_names('a', as_json=True)} AS feeds,"
            " (m.article_id IS NULL AND p.verdict = 'possible') AS possible,"
            f" {_story_columns(self.dialect)}, {_STORY_ALERTED}"
            " FROM deliveries d JOIN articles a ON a.id = d.article_id"
            " LEFT JOIN matches m ON m.article_id = d.article_id AND m.topic = d.topic"
            # a possible match (learn/) has a model call instead of a match
            " LEFT JOIN model_calls p ON p.article_id = d.article_id AND p.topic = d.topic"
            " WHERE d.channel = ? AND d.status = 'pending' AND d.next_attempt_at <= ? AND m.retracted_at IS NULL"
            + topic_filter
            + " ORDER BY d.created_at, d.id",
            params,
        )
        return [_delivery(r) for r in rows]

    def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        self._set_status(
            ids,
            "UPDATE deliveries SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL, claimed_by = NULL",
            [to_db_time(now)],
        )

    def mark_retry(self, ids: Sequence[int], error: str, retry_at: datetime) -> None:
        self._set_status(
            ids,
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, claimed_by = NULL",
            [error[:500], to_db_time(retry_at)],
        )

    def mark_dead(self, ids: Sequence[int], error: str) -> None:
        self._set_status(
            ids,
            "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_error = ?, claimed_by = NULL",
            [error[:500]],
        )

    def mark_skipped(self, ids: Sequence[int], reason: str) -> None:
        """For deliveries that will never be sent on purpose (a retracted match, a removed channel)."""
        self._set_status(ids, "UPDATE deliveries SET status = 'skipped', last_error = ?", [reason[:500]])

    def _set_status(self, ids: Sequence[int], update_sql: str, params: list[Any]) -> None:
        with self._write() as conn:
            for chunk in _chunks(ids, 500):
                conn.execute(f"{update_sql} WHERE id IN ({placeholders(chunk)})", [*params, *chunk])

    def retry_dead(self, now: datetime, *, channel: str | None = None, ids: Sequence[int] = ()) -> int:
        """Put dead letters back in the queue (`watcher alerts retry`)."""
        sql = "UPDATE deliveries SET status = 'pending', next_attempt_at = ? WHERE status = 'dead'"
        params: list[Any] = [to_db_time(now)]
        if channel:
            sql, params = sql + " AND channel = ?", params + [channel]
        if ids:
            sql, params = sql + f" AND id IN ({placeholders(ids)})", params + list(ids)
        with self._write() as conn:
            return conn.execute(sql, params).rowcount

    def list_deliveries(
        self, *, status: str | None = None, channel: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
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

    def claim_digest_slot(self, channel: str, slot: datetime) -> bool:
        """Take the digest `slot` of `channel` before sending it: True for the one worker that moves the channel's
        last digest to `slot`, False for any other (it was sent, or is being sent, elsewhere). A crash after the
        claim loses no item: each keeps its delivery, due again when the sender's claim on it is released or
        lapses, and then goes at once as overdue (created before the slot) or with the next digest."""
        stamp = to_db_time(slot)
        with self._write() as conn:
            conn.execute("INSERT INTO channel_state (channel) VALUES (?) ON CONFLICT (channel) DO NOTHING", (channel,))
            return (
                conn.execute(
                    "UPDATE channel_state SET last_digest_at = ?"
                    " WHERE channel = ? AND (last_digest_at IS NULL OR last_digest_at < ?)",
                    (stamp, channel, stamp),
                ).rowcount
                == 1
            )

    # Used by watcher/alerts/outbox.py (claim) and `watcher digest preview` (recent_matches).

    def claim_deliveries(
        self,
        ids: Sequence[int],
        now: datetime,
        until: datetime,
        owner: str | None = None,
        keep_owners: Callable[[str], bool] | None = None,
    ) -> list[int]:
        """Take due pending deliveries for one send: their next attempt moves to `until` (a lease), so a second
        pass or process reading the outbox meanwhile skips them. Returns the ids this call claimed; a send's
        outcome (mark_sent/mark_retry/mark_dead) replaces the lease. A crash leaves the claim with its `owner`,
        for release_claims to take back, or else to expire. An expired claim whose owner `keep_owners` says to
        respect (a live process on this host: it may have sent and be waiting to record it) is not taken."""
        claimed: list[int] = []
        with self._write() as conn:
            for chunk in _chunks(ids, 500):
                kept: list[str] = []
                if keep_owners is not None:
                    owners = conn.execute(
                        "SELECT DISTINCT claimed_by FROM deliveries WHERE claimed_by IS NOT NULL"
                        f" AND id IN ({placeholders(chunk)})",
                        list(chunk),
                    ).fetchall()
                    kept = [o for (o,) in owners if o != owner and keep_owners(o)]
                keep_sql = f" AND (claimed_by IS NULL OR claimed_by NOT IN ({placeholders(kept)}))" if kept else ""
                # SKIP LOCKED (PostgreSQL): rows another worker is claiming this instant are left to it, not waited
                # for; once its claim commits, their next attempt is in the future and the filter excludes them.
                rows = conn.execute(
                    "UPDATE deliveries SET next_attempt_at = ?, claimed_by = ? WHERE id IN (SELECT id FROM deliveries"
                    f" WHERE status = 'pending' AND next_attempt_at <= ? AND id IN ({placeholders(chunk)}){keep_sql}"
                    f"{self.dialect.skip_locked}) RETURNING id",
                    [to_db_time(until), owner, to_db_time(now), *chunk, *kept],
                ).fetchall()
                claimed += [r[0] for r in rows]
        return claimed

    def release_claims(self, now: datetime, holder_is_alive: Callable[[str], bool]) -> int:
        """Make the deliveries claimed by processes that are gone due again now; returns how many."""
        owners = [
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT claimed_by FROM deliveries WHERE status = 'pending' AND claimed_by IS NOT NULL"
                " AND next_attempt_at > ?",
                [to_db_time(now)],
            )
        ]
        dead = [owner for owner in owners if not holder_is_alive(owner)]
        released = 0
        with self._write() as conn:
            for owner in dead:
                released += conn.execute(
                    "UPDATE deliveries SET next_attempt_at = ?, claimed_by = NULL WHERE status = 'pending' AND claimed_by = ?",
                    (to_db_time(now), owner),
                ).rowcount
        return released

    def recent_matches(
        self, since: datetime, *, topics: Sequence[str] | None = None, limit: int = 1000
    ) -> list[Delivery]:
        """Matches (not retracted) made since `since`, newest first, as Delivery values with id 0 and no channel."""
        params: list[Any] = [to_db_time(since)]
        topic_filter = ""
        if topics is not None:
            topic_filter = f" AND m.topic IN ({placeholders(topics)})"
            params += list(topics)
        rows = self._query(
            "SELECT 0 AS id, m.article_id, m.topic, '' AS channel, m.matched_at AS created_at, 0 AS attempts, a.title,"
            f" a.url, a.published_at, m.terms, m.snippet, {self.dialect.feed_names('a', as_json=True)} AS feeds, {_story_columns(self.dialect)},"
            " 0 AS story_alerted FROM matches m JOIN articles a ON a.id = m.article_id"
            " WHERE m.retracted_at IS NULL AND m.matched_at >= ?"
            + topic_filter
            + " ORDER BY m.matched_at DESC LIMIT ?",
            [*params, limit],
        )
        return [_delivery(r) for r in rows]

    def pending_summary(self) -> list[dict[str, Any]]:
        """Pending deliveries per (channel, topic): how many, the oldest, and the oldest that was tried already."""
        return self._query(
            "SELECT channel, topic, count(*) AS n, min(created_at) AS oldest,"
            " min(CASE WHEN attempts > 0 THEN created_at END) AS oldest_tried"
            " FROM deliveries WHERE status = 'pending' GROUP BY channel, topic ORDER BY channel, topic"
        )

    def outbox_by_channel(self) -> list[dict[str, Any]]:
        """Deliveries per channel and status (pending, sent, dead, skipped)."""
        return self._query(
            "SELECT channel, status, count(*) AS n FROM deliveries GROUP BY channel, status ORDER BY channel, status"
        )


def _delivery(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        article_id=row["article_id"],
        topic=row["topic"],
        channel=row["channel"],
        created_at=datetime.fromisoformat(row["created_at"]),  # NOT NULL in the schema
        attempts=row["attempts"],
        title=row["title"],
        url=row["url"],
        feeds=tuple(json.loads(row["feeds"] or "[]")),
        published_at=from_db_time(row["published_at"]),
        terms=tuple(json.loads(row["terms"] or "[]")),
        snippet=row["snippet"] or "",
        possible=bool(row.get("possible")),
        story_id=row["story_id"],
        story_headline=row["story_headline"] or "",
        story_sources=tuple(
            StorySource(str(feed), str(url), str(title or ""), from_db_time(at), int(article_id))
            for feed, url, title, at, article_id in json.loads(row["story_sources"] or "[]")
        ),
        story_alerted=bool(row["story_alerted"]),
    )
