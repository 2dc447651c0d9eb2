"""The daemon's metrics, in Prometheus' text exposition format 0.0.4 (served at /metrics by ops.py).

Written here (a registry of counters and one histogram, and an exposition of about forty lines) rather than with
prometheus_client: we need a handful of counters, one histogram and a few gauges read from the store at scrape
time, and prometheus_client's module-level default registry would be one more global to reset between tests and
config reloads. Counters live in memory since the process started (Prometheus handles resets); gauges are read
from the database, which holds the truth across restarts.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from . import __version__
from .config import Config
from .store import Store, from_db_time

if TYPE_CHECKING:
    from .alerts.outbox import DispatchReport
    from .pipeline import FeedOutcome

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = {
    "watcher_feed_polls_total": "Feed polls, by outcome (ok, not-modified, error, offline: the network was down).",
    "watcher_feed_errors_total": "Failed feed polls, by kind of error (http, timeout, dns, connect, parse, ...).",
    "watcher_feed_entries_total": "Entries listed in the feeds fetched (new or not).",
    "watcher_new_entries_total": "Entries seen for the first time.",
    "watcher_articles_total": "Articles stored, by where their text came from (page, feed-content, feed-summary, none).",
    "watcher_matches_total": "Topic matches found, by topic.",
    "watcher_alerts_queued_total": "Deliveries queued in the outbox by new matches.",
    "watcher_deliveries_total": "Deliveries by channel and outcome (sent, retry, dead, failed), counted per item.",
    "watcher_config_reloads_total": "Config reloads, by result (ok, error).",
}
_GAUGES = {
    "watcher_info": "Always 1; the version is a label.",
    "watcher_feeds": "Feeds by state (enabled, failing, disabled in the config, removed from the config).",
    "watcher_outbox_deliveries": "Deliveries in the outbox by channel and status (pending, dead).",
    "watcher_polls_in_flight": "Feed polls running now.",
    "watcher_last_tick_timestamp_seconds": "When the scheduler last looked for due feeds (Unix time).",
    "watcher_worker_last_tick_timestamp_seconds": "Each watcher process sharing the database: its last tick (Unix time).",
    "watcher_worker_feeds_polled": "Each watcher process sharing the database: feeds polled since it started.",
    "watcher_worker_leases": "Each watcher process sharing the database: feeds it holds a lease on now.",
}
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_POLL_HISTOGRAM = "watcher_poll_duration_seconds"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    value: float
    labels: Labels = ()


class Metrics:
    """The daemon's counters and poll-duration histogram, in memory since the process started."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = {name: {} for name in _COUNTERS}
        self._buckets = [0] * len(POLL_BUCKETS)
        self._poll_sum = 0.0
        self._poll_count = 0

    def inc(self, name: str, by: float = 1.0, **labels: str) -> None:
        series = self._counters[name]
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0.0) + by

    def seed(self, config: Config) -> None:
        """Zero series for every known label value, so rate() works from the first scrape."""
        for status in ("ok", "not-modified", "error", "offline"):
            self.inc("watcher_feed_polls_total", 0, status=status)
        for topic in config.topics:
            self.inc("watcher_matches_total", 0, topic=topic.name)
        for channel in config.channels:
            for status in ("sent", "retry", "dead"):
                self.inc("watcher_deliveries_total", 0, channel=channel.name, status=status)
        for name in ("watcher_feed_entries_total", "watcher_new_entries_total", "watcher_alerts_queued_total"):
            self.inc(name, 0)

    def observe_poll(self, seconds: float) -> None:
        for i, bound in enumerate(POLL_BUCKETS):
            if seconds <= bound:
                self._buckets[i] += 1
        self._poll_sum += seconds
        self._poll_count += 1

    def record_feed(self, outcome: FeedOutcome) -> None:
        u = outcome.update
        self.inc("watcher_feed_polls_total", status=u.status)
        if u.status == "error":
            self.inc("watcher_feed_errors_total", kind=u.error_kind or "unknown")
        self.inc("watcher_feed_entries_total", u.entries_in_feed)
        self.inc("watcher_new_entries_total", len(u.seen_entry_ids))
        self.inc("watcher_alerts_queued_total", outcome.queued)
        for article in u.articles:
            self.inc("watcher_articles_total", body_source=article.body_source)
            for match in article.matches:
                self.inc("watcher_matches_total", topic=match.topic)
        self.observe_poll(u.duration_s)

    def record_dispatch(self, report: DispatchReport) -> None:
        for o in report.outcomes:
            self.inc("watcher_deliveries_total", o.items, channel=o.channel, status=o.status)

    def render(self, gauges: Iterable[Sample] = ()) -> str:
        lines: list[str] = []
        by_name: dict[str, list[Sample]] = {}
        for sample in gauges:
            by_name.setdefault(sample.name, []).append(sample)
        for name, samples in by_name.items():
            lines += [f"# HELP {name} {_GAUGES.get(name, name)}", f"# TYPE {name} gauge"]
            lines += [_sample_line(s.name, s.labels, s.value) for s in samples]
        for name, series in self._counters.items():
            lines += [f"# HELP {name} {_COUNTERS[name]}", f"# TYPE {name} counter"]
            lines += [_sample_line(name, labels, value) for labels, value in sorted(series.items())]
        h = _POLL_HISTOGRAM
        lines += [
            f"# HELP {h} Time to poll one feed: fetch, parse, pages, extraction, matching.",
            f"# TYPE {h} histogram",
        ]
        lines += [_sample_line(f"{h}_bucket", (("le", _number(b)),), n) for b, n in zip(POLL_BUCKETS, self._buckets)]
        lines += [
            _sample_line(f"{h}_bucket", (("le", "+Inf"),), self._poll_count),
            _sample_line(f"{h}_sum", (), self._poll_sum),
            _sample_line(f"{h}_count", (), self._poll_count),
        ]
        return "\n".join(lines) + "\n"


def gauges(
    store: Store,
    *,
    in_flight: int = 0,
    last_tick_at: datetime | None = None,
    configured: Collection[str] | None = None,
) -> list[Sample]:
    """Gauges read from the store at scrape time (they survive restarts: the database holds the truth).

    `configured`: the feed names of the config in use, so that a feed taken out of it counts as removed, not as
    disabled (its rows stay for its articles' sake, but nobody will enable it again)."""
    facts = store.feed_facts()
    enabled = [f for f in facts if f["enabled"]]
    off = [f for f in facts if not f["enabled"]]
    removed = [f for f in off if configured is not None and f["name"] not in configured]
    samples = [
        Sample("watcher_info", 1, (("version", __version__),)),
        Sample("watcher_feeds", len(enabled), (("state", "enabled"),)),
        Sample("watcher_feeds", sum(1 for f in enabled if f["error_count"] > 0), (("state", "failing"),)),
        Sample("watcher_feeds", len(off) - len(removed), (("state", "disabled"),)),
        Sample("watcher_feeds", len(removed), (("state", "removed"),)),
        Sample("watcher_polls_in_flight", in_flight),
    ]
    for row in store.outbox_by_channel():
        if row["status"] in ("pending", "dead"):
            samples.append(
                Sample("watcher_outbox_deliveries", row["n"], (("channel", row["channel"]), ("status", row["status"])))
            )
    if last_tick_at is not None:
        samples.append(Sample("watcher_last_tick_timestamp_seconds", round(last_tick_at.timestamp(), 3)))
    for worker in store.workers():
        labels = (("worker", worker["name"]), ("host", worker["host"]), ("pid", str(worker["pid"])))
        tick = from_db_time(worker["last_tick_at"])
        if tick is not None:
            samples.append(Sample("watcher_worker_last_tick_timestamp_seconds", round(tick.timestamp(), 3), labels))
        samples.append(Sample("watcher_worker_feeds_polled", worker["feeds_polled"], labels))
        samples.append(Sample("watcher_worker_leases", worker["leases"], labels))
    return samples


def _sample_line(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        return f"{name}{{{inner}}} {_number(value)}"
    return f"{name} {_number(value)}"


def _escape(value: str) -> str:
    # Exposition format: backslash, double quote and line feed are the three characters escaped in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
