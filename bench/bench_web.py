"""How long the analyst's page takes on a store of realistic size: the pages a reader opens, and "try a rule"
against the stored news (pure matching over every article of the window, on the daemon's loop).

    python bench/bench_web.py                 # 2,000 and 10,000 stored articles
    python bench/bench_web.py --sizes 500     # a quick look

Articles are made up here (sentences of news words, a tenth about drones); each size is a fresh SQLite file
written through Store.apply_update, as the pipeline writes. Times are the median of --runs requests, in-process
(httpx's ASGI transport): what the server spends, without the network. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from watcher.config import load_config
from watcher.models import Article, Entry, FeedUpdate
from watcher.rules import match_article
from watcher.runtime import Runtime
from watcher.store import Store
from watcher.web import Access, ConfigFile, WebContext, build_app

CONFIG = """
[watcher]
database = "bench.db"
[[feeds]]
name = "wire"
url = "https://wire.example/feed"
[topics.drone_cooperation]
rule = "drone* AND (produc* OR factory OR plant)"
[topics.troop_deployment]
rule = "troop* AND (deploy* OR send* OR sent)"
"""
WORDS = [
    "government",
    "minister",
    "said",
    "talks",
    "border",
    "economy",
    "market",
    "election",
    "police",
    "court",
    "city",
    "region",
    "officials",
    "week",
    "report",
    "agency",
    "president",
    "trade",
    "energy",
    "security",
    "parliament",
    "budget",
    "weather",
    "storm",
    "school",
    "hospital",
    "workers",
]
TOPICAL = ["drones", "factory", "produce", "troops", "deployed", "sent", "plant"]
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def text(rng: random.Random, words: int, topical: bool) -> str:
    pool = WORDS + (TOPICAL * 3 if topical else [])
    sentences = []
    for _ in range(max(1, words // 12)):
        sentences.append(" ".join(rng.choice(pool) for _ in range(12)).capitalize() + ".")
    return " ".join(sentences)


def build(directory: Path, size: int) -> tuple[Path, Store]:
    (directory / "config.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(directory / "config.toml")
    store = Store.open(directory / "bench.db")
    store.sync_feeds(config.feeds, config.schedule.interval, NOW - timedelta(days=30))
    feed_id = store.db.conn.execute("SELECT id FROM feeds").fetchone()[0]
    rng = random.Random(size)
    batch = []
    for n in range(size):
        topical = n % 10 == 0
        title = text(rng, 10, topical)[:90]
        body = text(rng, 400, topical)
        when = NOW - timedelta(minutes=n)  # published over the last hours; all fetched in the window tried
        url = f"https://wire.example/{n}"
        entry = Entry("https://wire.example/feed", str(n), url, url, title)
        matches = match_article(config.compiled_topics, title, body)
        batch.append(Article(url, title, body, "page", entry, published_at=when, matches=matches))
        if len(batch) == 200 or n == size - 1:
            update = FeedUpdate("https://wire.example/feed", NOW, NOW, "ok", articles=tuple(batch))
            store.apply_update(feed_id, update, {})
            batch = []
    return directory / "config.toml", store


async def measure(directory: Path, size: int, runs: int) -> list[tuple[str, float]]:
    config_path, store = build(directory, size)
    config = load_config(config_path)
    results = []
    async with Runtime(config) as runtime:
        context = WebContext(store, ConfigFile(config), runtime, Access(True, None), clock=lambda: NOW)
        transport = httpx.ASGITransport(app=build_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get("/feeds")
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            article = store.db.conn.execute("SELECT max(id) FROM articles WHERE matched = 1").fetchone()[0]
            cases = [
                ("GET /stories (30 newest, their sources)", lambda: client.get("/stories")),
                ("GET /matches (50 newest)", lambda: client.get("/matches")),
                ("GET /matches?q=drones (search)", lambda: client.get("/matches", params={"q": "drones"})),
                ("GET /article/ID (text, explanation)", lambda: client.get(f"/article/{article}")),
                ("GET /rules/T/check (as you type)", lambda: client.get("/rules/drone_cooperation/check", params={"rule": "drone* AND plant"})),
                ("POST try a rule, last 7 days", lambda: client.post("/rules/drone_cooperation/try", data={"csrf": csrf, "rule": "drone* AND plant", "against": "days", "days": "7"})),
            ]  # fmt: skip
            for name, request in cases:
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    r = await request()
                    times.append(time.perf_counter() - started)
                    assert r.status_code == 200, (name, r.status_code)
                results.append((name, statistics.median(times) * 1000))
            # The loop stays free while a rule is tried (the preview runs in a thread): the worst answer to the
            # as-you-type check sent meanwhile.
            trying = asyncio.ensure_future(cases[-1][1]())
            worst = 0.0
            checks = 0
            while not trying.done():
                await asyncio.sleep(0.05)  # a typist's pace; and the in-process transport never yields by itself
                started = time.perf_counter()
                await cases[4][1]()
                worst = max(worst, time.perf_counter() - started)
                checks += 1
            await trying
            assert checks > 0
            results.append(("GET /rules/T/check while a try runs: worst", worst * 1000))
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    table: dict[str, dict[int, float]] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            for name, ms in asyncio.run(measure(Path(tmp), size, args.runs)):
                table.setdefault(name, {})[size] = ms
    print("| request | " + " | ".join(f"{s:,} articles: ms" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, by_size in table.items():
        print(f"| {name} | " + " | ".join(f"{by_size[s]:.1f}" for s in sizes) + " |")


if __name__ == "__main__":
    main()
