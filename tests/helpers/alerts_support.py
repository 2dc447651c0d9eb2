"""Shared helpers for the alerts tests (no tests here): a real Store filled through apply_update, configs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from watcher.alerts.digest import Message
from watcher.config import Config, FeedConfig, config_from_dict
from watcher.errors import DeliveryError
from watcher.models import Article, Entry, FeedUpdate, Match
from watcher.store import Store

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
TOPICS = {
    "drone_cooperation": {"rule": "drone AND Russia", "description": "Joint drone production"},
    "troop_deployment": {"rule": "troops AND Korea", "description": "North Korean troops at the front"},
    "arms_transfers": {"rule": "shells OR missiles", "description": "Shells and missiles"},
    "sanctions": {"rule": "sanctions", "urgent": True},
}
_serial = itertools.count(1)


def make_config(channels: dict[str, dict[str, Any]], *, timezone: str = "UTC", topics: dict | None = None) -> Config:
    return config_from_dict(
        {
            "watcher": {"timezone": timezone},
            "feeds": [
                {"name": "Reuters World", "url": "https://example.com/reuters.xml"},
                {"name": "Yonhap", "url": "https://example.com/yonhap.xml"},
            ],
            "topics": topics or TOPICS,
            "channels": channels,
        },
        compile_rules=False,
    )


def open_store(tmp_path, config: Config, now: datetime = T0) -> Store:
    store = Store.open(tmp_path / "w.db")
    store.sync_feeds([FeedConfig(f.name, f.url) for f in config.feeds], timedelta(minutes=15), now)
    return store


def feed_id(store: Store, name: str = "Reuters World") -> int:
    return next(f.id for f in store.due_feeds(datetime(2100, 1, 1, tzinfo=UTC)) if f.name == name)


def routes_for(config: Config) -> dict[str, list[str]]:
    return {t.name: [c.name for c in config.channels if not c.topics or t.name in c.topics] for t in config.topics}


def _place(n: int) -> str:
    syllables = ["ka", "lo", "mi", "ren", "tu", "va", "zor", "pel", "qui", "dan"]
    return "".join(syllables[int(d)] for d in str(n * 7919)).capitalize() + f" {n * 37 + 11} {_place_word(n)}"


def _place_word(n: int) -> str:
    return ["harbour", "bridge", "factory", "airbase", "summit", "ceasefire", "election", "pipeline", "embassy"][n % 9]


def article(
    topic: str | tuple[str, ...],
    *,
    title: str | None = None,
    url: str | None = None,
    published_at: datetime | None = None,
    snippet: str = "North Korea and [[Russia]] agreed on [[drone]] production",
    terms: tuple[str, ...] = ("drone", "Russia"),
) -> Article:
    n = next(_serial)
    topics = (topic,) if isinstance(topic, str) else topic
    url = url or f"https://news.example.com/story/{n}"
    # Each default article is its own news event (distinct places and figures), so stories keep them apart.
    title = title if title is not None else _place(n)
    entry = Entry(
        feed_url="https://example.com/reuters.xml",
        entry_id=f"id-{n}",
        url=url,
        link=url,
        title=title,
        published_at=published_at,
    )
    # A javascript: URL should never get past parse.py; stored anyway, it tests the renderers' own defence.
    return Article(
        url=url,
        title=title,
        body=f"{_place(n)}.",
        body_source="feed-summary",
        entry=entry,
        published_at=published_at,
        matches=tuple(Match(t, 1.0, terms, snippet) for t in topics),
    )


def add_articles(
    store: Store, config: Config, articles: list[Article], now: datetime, *, feed: str = "Reuters World"
) -> int:
    """One poll of one feed that found `articles`: written with its deliveries in one transaction, as the pipeline does."""
    update = FeedUpdate(
        feed_url="https://example.com/reuters.xml",
        checked_at=now,
        next_check_at=now + timedelta(minutes=15),
        status="ok",
        seen_entry_ids=tuple(a.entry.entry_id for a in articles),
        articles=tuple(articles),
        alert=True,
    )
    return store.apply_update(feed_id(store, feed), update, routes_for(config))


def statuses(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in store.list_deliveries(limit=100_000):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


@dataclass
class Recorder:
    """A channel that records messages, and fails on cue: `fail` holds exceptions raised by the next sends."""

    name: str
    messages: list[Message] = field(default_factory=list)
    fail: list[BaseException] = field(default_factory=list)

    async def send(self, message: Message) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.messages.append(message)

    @property
    def delivered_ids(self) -> list[int]:
        return [i for m in self.messages for i in m.delivery_ids]


def retryable(text: str = "421 try later", retry_after: timedelta | None = None) -> DeliveryError:
    return DeliveryError(text, retry_after=retry_after)


def cli_obj(config: Config, store: Store) -> SimpleNamespace:
    return SimpleNamespace(config=config, store=store)
