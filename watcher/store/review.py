"""What the analyst's page (watcher/web/) reads and changes beyond the other mixins: matches without the ones
labelled "not relevant", the teaching queue (held-back and possible matches not yet
labelled), and the writes that follow a label: a match dismissed skips its pending alerts; a model call
confirmed becomes a match.

A label itself is written by LabelQueries.label_article (labels.py), the one way labels are made.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..errors import StoreError
from .base import FEED_NAMES_JSON, Connection, to_db_time

# A match (m) the analyst labelled "not relevant" for its topic: it leaves the lists (the label stays the record).
DISMISSED = "EXISTS (SELECT 1 FROM labels l WHERE l.article_id = m.article_id AND l.topic = m.topic AND l.label = 'no')"
LABEL_OF = "(SELECT l.label FROM labels l WHERE l.article_id = m.article_id AND l.topic = m.topic)"


class ReviewQueries(Connection):
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
            f" c.decided_at, a.title, a.url, a.published_at, {FEED_NAMES_JSON} AS feeds"
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

    def teaching_queue_size(self) -> int:
        return int(
            self.db.conn.execute(
                "SELECT count(*) FROM model_calls c WHERE NOT EXISTS"
                " (SELECT 1 FROM labels l WHERE l.article_id = c.article_id AND l.topic = c.topic)"
            ).fetchone()[0]
        )

    # --- feeds ---------------------------------------------------------------------------------------------------

    def feed_pages(self, since: datetime) -> dict[str, tuple[int, int]]:
        """feed name -> (articles stored since `since`, of which the page was not read: blocked by the address
        guard, too big, failed or without text, so the feed's own text stood in)."""
        rows = self.db.conn.execute(
            "SELECT f.name, count(*), sum(a.body_source != 'page') FROM article_sources s"
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
                        "INSERT OR IGNORE INTO deliveries (article_id, topic, channel, created_at, next_attempt_at)"
                        " VALUES (?, ?, ?, ?, ?)",
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
