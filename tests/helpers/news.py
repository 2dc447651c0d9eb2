"""The local news site most end-to-end tests poll: feeds in five formats and article pages with clutter, built from
tests/fixtures/site, plus the config and the one-call poll that go with it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from watcher.config import config_from_dict
from watcher.pipeline import Pipeline, poll
from watcher.runtime import Runtime

SITE = Path(__file__).parent.parent / "fixtures" / "site"

PAGES = {
    "drone-plant": (
        "North Korea and Russia to co-produce attack drones",
        [
            "North Korea and Russia have agreed to build a factory that will produce attack drones, officials in Seoul said on Wednesday.",
            "The plant, near the Russian city of Yelabuga, is expected to turn out several thousand drones a year with North Korean workers.",
            "Analysts said the joint production deal deepens military cooperation between the two countries since their 2024 treaty.",
        ],
    ),
    "troops-kursk": (
        "Pyongyang sends thousands more troops to Russia",
        [
            "North Korea has sent thousands more troops to Russia's Kursk region, South Korea's spy agency said.",
            "The new deployment follows the return of some units that had fought on the front line earlier this year.",
        ],
    ),
    "snow": (
        "Seoul braces for snow",
        ["Forecasters expect the first snow of the winter to reach ten centimetres by Friday in the capital."],
    ),
    "markets": (
        "Tokyo stocks close higher",
        ["Exporters led the gains on the Nikkei as the yen weakened against the dollar."],
    ),
    "iran-drones": (
        "Iran and Russia expand joint drone production",
        [
            "Iran will supply engines for drones produced in Russia under an expanded cooperation agreement, the two governments said."
        ],
    ),
    "latin": (
        "Troops deployed to the border",
        ["Troops were deployed to the border town overnight, the ministry said in a statement."],
    ),
    "broken-item": (
        "Russia sends drone engineers",
        ["Russian engineers will help North Korea produce drones, and more troops were sent."],
    ),
}

FEEDS = {
    "world": ("/world.rss", "application/rss+xml"),
    "asia": ("/asia.atom", "application/atom+xml"),
    "defence": ("/defence.rdf", "application/rdf+xml"),
    "json": ("/feed.json", "application/feed+json"),
    "latin": ("/latin1.xml", "application/xml"),
    "broken": ("/broken.xml", "application/xml"),
}


def serve_site(site) -> None:
    base = f"http://127.0.0.1:{site.port}"
    for path, ctype in FEEDS.values():
        raw = (SITE / path.lstrip("/")).read_bytes()
        site.add(path, raw.replace(b"{base}", base.encode()), content_type=ctype)
    template = (SITE / "article.html").read_text(encoding="utf-8")
    for slug, (title, paragraphs) in PAGES.items():
        html = template.replace("{title}", title).replace("{paragraphs}", "\n".join(f"<p>{p}</p>" for p in paragraphs))
        site.add(f"/articles/{slug}.html", html, content_type="text/html; charset=utf-8")
    # /articles/gone.html is not added: it answers 404.


def make_config(site, feeds=FEEDS, **extra):
    data = {
        "fetch": {"allow_networks": ["127.0.0.0/8"], "timeout": "3s", "read_timeout": "2s", "connect_timeout": "2s"},
        "extract": {"workers": 1, "timeout": "20s"},
        "feeds": [{"name": name, "url": site.url(FEEDS[name][0] if name in FEEDS else feeds[name])} for name in feeds],
        "topics": {
            "drone_cooperation": {"rule": "drone* AND (produc* OR factory OR plant OR supply)"},
            "troop_deployment": {"rule": "troop* AND (deploy* OR send* OR sent OR withdraw* OR pulled)"},
        },
        "channels": {"inbox": {"type": "console", "mode": "immediate"}},
    }
    for section, values in extra.items():
        data.setdefault(section, {}).update(values) if isinstance(values, dict) else data.__setitem__(section, values)
    return config_from_dict(data, "test-config.toml")


async def poll_all(config, store, extractor, now=None, names=None):
    now = now or datetime.now(UTC)
    store.sync_feeds(config.feeds, config.schedule.interval, now)
    async with Runtime(config, workers=extractor) as runtime:
        pipeline = Pipeline.build(config, store, runtime)
        pipeline.clock = lambda: now
        feeds = store.due_feeds(now, names=names or [f.name for f in config.feeds])
        return {o.feed.name: o for o in await poll(pipeline, feeds)}


async def poll_feed_with(site, store, name, path, **workers):
    """Poll one feed of the site through a worker process a test made for itself (`workers`: its misbehaving
    extraction or matching, its time limit), shut down whatever happens; the feed's poll itself must succeed."""
    from watcher.workers import Workers

    pool = Workers(workers=1, **workers)
    try:
        outcomes = await poll_all(make_config(site, feeds={name: path}), store, pool)
    finally:
        pool.shutdown()
    assert outcomes[name].update.status == "ok"


def articles(store):
    return {r["title"]: r for r in store.db.query("SELECT * FROM articles WHERE matched = 1")}
