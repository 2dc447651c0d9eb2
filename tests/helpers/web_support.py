"""The analyst's page under test: a config file on disk (the page edits it), a store seeded with matched articles
through the real write path, and the application with its context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.config import Config, load_config
from watcher.models import Article, Entry, FeedUpdate
from watcher.rules import match_article
from watcher.store import Store

CONFIG = """# the analyst's test config
[watcher]
database = "watcher.db"
timezone = "Asia/Seoul"

[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "5s"

[extract]
workers = 1

[[feeds]]
name = "world"
url = "{base}/world.rss"

[[feeds]]
name = "asia"
url = "{base}/asia.atom"

# --- Topics ---
[topics.drone_cooperation]
# drones made together
rule = "drone* AND (produc* OR factory OR plant)"
description = "drones built together"

[topics.troop_deployment]
rule = "troop* AND (deploy* OR send* OR sent)"

[channels.inbox]
type = "console"
mode = "digest"
"""

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

STORIES = [
    # (feed, slug, title, body, hours ago)
    ("world", "drone-plant", "North Korea and Russia to co-produce attack drones",
     "North Korea and Russia have agreed to build a factory that will produce attack drones.", 2),
    ("world", "troops", "Pyongyang sends thousands more troops to Russia",
     "North Korea has sent thousands more troops to Russia's Kursk region.", 5),
    ("asia", "iran", "Iran and Russia expand joint drone production",
     "Iran will supply engines for drones produced in Russia under an expanded agreement.", 30),
    ("asia", "drone-show", "Drone light show delights Seoul",
     "Hundreds of drones lit up the sky over the Han river on Saturday.", 3),
    ("world", "snow", "Seoul braces for snow", "Forecasters expect the first snow of the winter.", 1),
]  # fmt: skip


def write_config(directory: Path, base: str = "http://127.0.0.1:9") -> Config:
    path = directory / "config.toml"
    path.write_text(CONFIG.replace("{base}", base), encoding="utf-8")
    return load_config(path)


def seed(store: Store, config: Config, now: datetime = NOW, stories=STORIES) -> None:
    """Each story stored by its feed as the pipeline would: matched with the config's rules, alerts queued."""
    store.sync_feeds(config.feeds, config.schedule.interval, now - timedelta(days=2))
    ids = {r["name"]: r for r in store.feed_status()}
    assert ids
    for feed, slug, title, body, hours in stories:
        url = f"https://news.example/{slug}"
        entry = Entry(f"https://{feed}.example/feed", slug, url, url, title)
        when = now - timedelta(hours=hours)
        matches = match_article(config.compiled_topics, title, body)
        article = Article(url, title, body, "page", entry, published_at=when, matches=matches)
        feed_id = store.db.conn.execute("SELECT id FROM feeds WHERE name = ?", (feed,)).fetchone()[0]
        update = FeedUpdate(
            entry.feed_url, when, when + timedelta(minutes=15), "ok", seen_entry_ids=(slug,), articles=(article,)
        )
        store.apply_update(feed_id, update, config.routes())
