"""Labels, the topics' models and the models' calls (held-back and possible matches).

A label keeps the title and body it was given on: training reads only this table, so a label outlives the
purge of its article, and an imported example needs no article at all. A model is stored as plain numbers (a
bias and a JSON object of weights by feature name); `labels_version` tells whether the labels changed since.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import StoreError
from ..models import ModelCall
from .base import Connection, from_db_time, to_db_time


@dataclass(frozen=True, slots=True)
class NewLabel:
    """One label to write. `item_key` identifies what was labelled: an article's URL or "import:<uid>"."""

    topic: str
    label: str  # "yes" | "no"
    item_key: str
    title: str
    body: str
    source: str
    labelled_by: str = ""
    article_id: int | None = None


class LabelQueries(Connection):
    # --- labels ---------------------------------------------------------------------------------------------

    def label_article(
        self, article_id: int, topic: str, label: str, *, source: str, who: str, now: datetime
    ) -> NewLabel:
        """Label a stored article (labelling it again replaces the label); raises StoreError for an unknown id."""
        row = self.db.conn.execute("SELECT url, title, body FROM articles WHERE id = ?", (article_id,)).fetchone()
        if row is None:
            raise StoreError(f"no article with id {article_id} (`watcher search` and the views show ids)")
        new = NewLabel(topic, label, row[0], row[1], row[2], source, who, article_id)
        self.add_labels([new], now)
        return new

    def add_labels(self, labels: Iterable[NewLabel], now: datetime) -> int:
        """Write labels in one transaction, replacing earlier labels of the same (topic, item); returns the count."""
        stamp = to_db_time(now)
        rows = [
            (n.topic, n.label, n.item_key, n.article_id, n.title, n.body, n.source, stamp, n.labelled_by)
            for n in labels
        ]
        with self._write() as conn:
            # Delete then insert (not an upsert): the new row gets a new id, which changes labels_version.
            conn.executemany("DELETE FROM labels WHERE topic = ? AND item_key = ?", [(r[0], r[2]) for r in rows])
            conn.executemany(
                "INSERT INTO labels (topic, label, item_key, article_id, title, body, source, labelled_at, labelled_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def article_ids_by_url(self, urls: Sequence[str]) -> dict[str, int]:
        return dict(self._select_in("SELECT url, id FROM articles WHERE url IN", urls))

    def list_labels(self, *, topic: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = ("WHERE topic = ?", [topic]) if topic else ("", [])
        return self._query(
            "SELECT id, topic, label, article_id, item_key, title, source, labelled_at, labelled_by"
            f" FROM labels {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )

    def export_labels(self, *, topic: str | None = None) -> Iterator[dict[str, Any]]:
        """One dict per labelled item, in the import format: uid, title, text, labels {topic: yes|no}."""
        where, params = ("WHERE topic = ?", [topic]) if topic else ("", [])
        current: dict[str, Any] | None = None
        for row in self.db.query(
            f"SELECT item_key, topic, label, title, body, source FROM labels {where} ORDER BY item_key, topic", params
        ):
            key = row["item_key"]
            if current is None or current["uid"] != _uid(key):
                if current is not None:
                    yield current
                current = {"uid": _uid(key), "title": row["title"], "text": row["body"], "labels": {}}
                if not key.startswith("import:"):
                    current["url"] = key
            current["labels"][row["topic"]] = row["label"]
        if current is not None:
            yield current

    def label_counts(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT topic, sum(CASE WHEN label = 'yes' THEN 1 ELSE 0 END) AS yes, sum(CASE WHEN label = 'no' THEN 1 ELSE 0 END) AS no, max(labelled_at) AS last"
            " FROM labels GROUP BY topic ORDER BY topic"
        )

    def training_examples(self, topic: str) -> list[tuple[str, str, bool]]:
        """(title, body, label is yes) for every label of a topic, oldest first."""
        rows = self.db.conn.execute("SELECT title, body, label FROM labels WHERE topic = ? ORDER BY id", (topic,))
        return [(r[0], r[1], r[2] == "yes") for r in rows]

    def labels_versions(self) -> dict[str, str]:
        """topic -> a summary of its labels that changes whenever one is added, replaced or removed."""
        rows = self.db.conn.execute(
            "SELECT topic, count(*), max(id), sum(CASE WHEN label = 'yes' THEN 1 ELSE 0 END) FROM labels GROUP BY topic"
        )
        return {r[0]: f"{r[1]}:{r[2]}:{r[3]}" for r in rows}

    # --- models ---------------------------------------------------------------------------------------------

    def save_model(
        self,
        topic: str,
        *,
        trained_at: datetime,
        labels: int,
        positives: int,
        labels_version: str,
        bias: float,
        weights: Mapping[str, float],
    ) -> None:
        """Store a topic's model as plain numbers: a bias and a JSON object of weights by feature name."""
        text = json.dumps(dict(weights), ensure_ascii=False, separators=(",", ":"))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO topic_models (topic, trained_at, labels, positives, labels_version, bias, weights)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (topic) DO UPDATE SET trained_at = excluded.trained_at,"
                " labels = excluded.labels, positives = excluded.positives, labels_version = excluded.labels_version,"
                " bias = excluded.bias, weights = excluded.weights",
                (topic, to_db_time(trained_at), labels, positives, labels_version, bias, text),
            )

    def delete_model(self, topic: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM topic_models WHERE topic = ?", (topic,))

    def model_versions(self) -> dict[str, str]:
        """topic -> the labels_version its stored model was trained on (cheap: no weights read)."""
        return dict(self.db.conn.execute("SELECT topic, labels_version FROM topic_models").fetchall())

    def load_models(self) -> list[dict[str, Any]]:
        """Every stored model: topic, trained_at, labels, positives, labels_version, bias, weights {name: weight}."""
        out = []
        for row in self._query("SELECT * FROM topic_models ORDER BY topic"):
            try:
                row["weights"] = {str(k): float(v) for k, v in json.loads(row["weights"]).items()}
            except (ValueError, AttributeError) as e:
                raise StoreError(f"the stored model of topic {row['topic']} is not readable: {e}") from e
            row["trained_at"] = from_db_time(row["trained_at"])
            out.append(row)
        return out

    def model_summaries(self) -> list[dict[str, Any]]:
        return self._query(
            f"SELECT topic, trained_at, labels, positives, {self.dialect.json_key_count('weights')} AS features FROM topic_models"
            " ORDER BY topic"
        )

    # --- the models' calls ----------------------------------------------------------------------------------

    def save_model_calls(self, calls: Sequence[tuple[int, Sequence[ModelCall]]], now: datetime) -> None:
        """Record calls made outside a poll (`watcher rematch`): stored and visible, no deliveries queued."""
        with self._write() as conn:
            for article_id, article_calls in calls:
                record_model_calls(conn, article_id, article_calls, to_db_time(now), {})

    def model_call_counts(self) -> dict[str, int]:
        rows = self.db.conn.execute("SELECT verdict, count(*) FROM model_calls GROUP BY verdict")
        return {r[0]: r[1] for r in rows}

    def recent_model_calls(self, *, verdict: str | None = None, limit: int = 5) -> list[dict[str, Any]]:
        where, params = ("WHERE c.verdict = ?", [verdict]) if verdict else ("", [])
        rows = self._query(
            "SELECT c.article_id, c.topic, c.verdict, c.probability, c.terms, c.features, c.decided_at, a.title,"
            f" a.url, {self.dialect.feed_names('a', as_json=False)} AS feeds FROM model_calls c JOIN articles a ON a.id = c.article_id"
            f" {where} ORDER BY c.decided_at DESC, c.article_id DESC LIMIT ?",
            [*params, limit],
        )
        for row in rows:
            row["terms"] = json.loads(row["terms"])
            row["features"] = [tuple(f) for f in json.loads(row["features"])]
        return rows


def _uid(item_key: str) -> str:
    return item_key[len("import:") :] if item_key.startswith("import:") else item_key


def record_model_calls(
    conn: sqlite3.Connection,
    article_id: int,
    calls: Sequence[ModelCall],
    now: str,
    possible_routes: Mapping[str, Sequence[str]],
) -> int:
    """Inside a feed's write: store each call; a possible match is queued on the topic's digest channels only
    (never an immediate alert). Returns the deliveries queued."""
    queued = 0
    for call in calls:
        conn.execute(
            "INSERT INTO model_calls (article_id, topic, verdict, probability, rule_score, terms, snippet,"
            " features, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (article_id, topic) DO UPDATE SET"
            " verdict = excluded.verdict, probability = excluded.probability, rule_score = excluded.rule_score,"
            " terms = excluded.terms, snippet = excluded.snippet, features = excluded.features,"
            " decided_at = excluded.decided_at",
            (
                article_id,
                call.topic,
                call.verdict,
                call.probability,
                call.rule_score,
                json.dumps(list(call.terms), ensure_ascii=False),
                call.snippet,
                json.dumps([list(f) for f in call.features], ensure_ascii=False),
                now,
            ),
        )
        if call.verdict != "possible":
            continue
        for channel in possible_routes.get(call.topic, ()):
            queued += conn.execute(
                "INSERT INTO deliveries (article_id, topic, channel, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (article_id, call.topic, channel, now, now),
            ).rowcount
    return queued
