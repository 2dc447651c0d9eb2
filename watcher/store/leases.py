"""Several workers, one database (issue 14): due feeds claimed with a lease, and the workers' own rows.

A worker claims up to `limit` due feeds by writing its name and a lease end on them in one statement
(`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING`): on PostgreSQL a feed another
worker is claiming at the same moment is skipped, not waited for, and one already claimed is excluded by its lease,
so each due feed goes to exactly one worker. A worker that dies leaves leases that lapse at `lease_until`, and the
feeds are claimed again by whoever asks next. On SQLite the one write lock serialises the claims, with the same SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ..models import FeedRecord
from .base import Connection, _chunks, placeholders, to_db_time
from .dialect import Dialect
from .feeds import _feed_record


def claim_sql(dialect: Dialect, limit: int) -> str:
    """The claim statement; parameters: owner, lease end, now, now."""
    return (
        "UPDATE feeds SET lease_owner = ?, lease_until = ?"
        " WHERE id IN (SELECT id FROM feeds WHERE enabled = 1 AND next_check_at <= ?"
        " AND (lease_until IS NULL OR lease_until <= ?)"
        f" ORDER BY next_check_at LIMIT {int(limit)}{dialect.skip_locked})"
        " RETURNING *"
    )


def claim_params(owner: str, now: datetime, lease: timedelta) -> tuple[str, str, str, str]:
    stamp = to_db_time(now)
    return (owner, to_db_time(now + lease), stamp, stamp)


def release_sql(feed_ids: Sequence[int]) -> str:
    """Give back the leases `owner` still holds on `feed_ids` (parameters: owner, then the ids)."""
    return f"UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ? AND id IN ({placeholders(feed_ids)})"


def renew_sql(feed_ids: Sequence[int]) -> str:
    """Move the end of the leases `owner` still holds on `feed_ids` (parameters: lease end, owner, then the ids)."""
    return f"UPDATE feeds SET lease_until = ? WHERE lease_owner = ? AND id IN ({placeholders(feed_ids)})"


def heartbeat_sql() -> str:
    """Record a worker's tick (parameters: name, host, pid, now, now, feeds polled since the last one)."""
    return (
        "INSERT INTO workers (name, host, pid, started_at, last_tick_at, feeds_polled) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET last_tick_at = excluded.last_tick_at,"
        " feeds_polled = workers.feeds_polled + excluded.feeds_polled"
    )


# A worker row whose last tick is older than this is a process long gone: pruned, so status lists the living.
WORKER_ROW_KEPT = timedelta(days=1)


def prune_workers_sql() -> str:
    """Forget workers that have not ticked for WORKER_ROW_KEPT (parameter: the oldest tick kept)."""
    return "DELETE FROM workers WHERE last_tick_at < ?"


def by_schedule(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """RETURNING gives no order: most overdue first, as due_feeds gives them."""
    return sorted(rows, key=lambda r: (r["next_check_at"], r["id"]))


class LeaseQueries(Connection):
    def claim_due_feeds(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[FeedRecord]:
        """Up to `limit` due feeds nobody holds a live lease on, now leased to `owner` until now + lease."""
        with self._write() as conn:
            cursor = conn.execute(claim_sql(self.dialect, limit), claim_params(owner, now, lease))
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, r)) for r in cursor.fetchall()]
        return [_feed_record(r) for r in by_schedule(rows)]

    def release_feed_leases(self, owner: str, feed_ids: Sequence[int]) -> int:
        if not feed_ids:
            return 0
        with self._write() as conn:
            return conn.execute(release_sql(feed_ids), (owner, *feed_ids)).rowcount

    def renew_feed_leases(self, owner: str, feed_ids: Sequence[int], until: datetime) -> int:
        """Keep the feeds `owner` is still polling its own until `until` (a poll with many pages outlives one lease);
        a lease that lapsed and went to another worker is not taken back."""
        renewed = 0
        with self._write() as conn:
            for chunk in _chunks(feed_ids, 500):
                renewed += conn.execute(renew_sql(chunk), (to_db_time(until), owner, *chunk)).rowcount
        return renewed

    def release_all_feed_leases(self, owner: str) -> int:
        """Give back every lease `owner` holds (a worker stopping): its feeds are due for the others at once."""
        with self._write() as conn:
            return conn.execute(
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", (owner,)
            ).rowcount

    def live_workers(self, since: datetime) -> int:
        """How many workers have ticked since `since` (this one included once it has): the per-host budget is
        shared among them (docs/schema.md, "Several workers")."""
        row = self.db.conn.execute("SELECT count(*) FROM workers WHERE last_tick_at >= ?", (to_db_time(since),))
        return int(row.fetchone()[0])

    def record_worker_tick(self, name: str, host: str, pid: int, now: datetime, feeds_polled: int) -> None:
        stamp = to_db_time(now)
        with self._write() as conn:
            conn.execute(heartbeat_sql(), (name, host, pid, stamp, stamp, feeds_polled))
            conn.execute(prune_workers_sql(), (to_db_time(now - WORKER_ROW_KEPT),))

    def workers(self) -> list[dict[str, Any]]:
        """Each worker that has ticked, with the leases it holds now."""
        return self._query(
            "SELECT w.name, w.host, w.pid, w.started_at, w.last_tick_at, w.feeds_polled,"
            " (SELECT count(*) FROM feeds f WHERE f.lease_owner = w.name) AS leases"
            " FROM workers w ORDER BY w.last_tick_at DESC"
        )
