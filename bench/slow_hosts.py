"""How long a healthy feed takes when polled beside feeds whose article links point at names that do not resolve.

    python bench/slow_hosts.py [--dns-delay 2] [--dead-feeds 3] [--links 10]

The healthy feed and its pages are served on 127.0.0.1 (tests/helpers); the dead feeds' links point at names under
`.example.test`, answered by an injected resolver that waits `--dns-delay` seconds and then fails, as an offline
machine's resolver does. No address but loopback is touched. Prints a table: the healthy feed alone, then beside
the dead feeds (its own duration, the whole poll, and how many lookups the resolver saw).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.localsite import LocalSite
from tests.helpers.news import make_config, serve_site
from watcher import guard
from watcher.pipeline import Pipeline, poll
from watcher.runtime import Runtime
from watcher.store import Store
from watcher.workers import Workers


async def run(site: LocalSite, workers: Workers, dead_feeds: int, links: int, delay: float) -> dict:
    lookups: list[str] = []

    async def slow_failing_resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        await asyncio.sleep(delay)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    guard._system_resolve = slow_failing_resolver
    feeds: dict[str, str] = {}
    for n in range(dead_feeds):
        items = "".join(
            f"<item><title>Drone story {n}-{i}</title><link>http://cdn{n}.example.test/a/{i}</link>"
            f"<guid>d{n}-{i}</guid><description>Drone factory news {i}.</description></item>"
            for i in range(links)
        )
        site.add(f"/dead{n}.rss", f'<?xml version="1.0"?><rss version="2.0"><channel>{items}</channel></rss>')
        feeds[f"dead{n}"] = f"/dead{n}.rss"
    feeds["world"] = "/world.rss"  # listed last: its pages queue behind the dead feeds' pages
    config = make_config(site, feeds=feeds, fetch={"connect_timeout": "30s", "timeout": "60s"})
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "w.db")
        now = datetime.now(UTC)
        store.sync_feeds(config.feeds, config.schedule.interval, now)
        async with Runtime(config, workers=workers) as runtime:
            pipeline = Pipeline.build(config, store, runtime)
            started = time.perf_counter()
            outcomes = await poll(pipeline, store.due_feeds(now))
            total = time.perf_counter() - started
        store.close()
    world = next(o for o in outcomes if o.feed.name == "world")
    return {
        "dead_feeds": dead_feeds,
        "healthy_feed_s": round(world.update.duration_s, 2),
        "whole_poll_s": round(total, 2),
        "lookups": len(lookups),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dns-delay", type=float, default=2.0)
    parser.add_argument("--dead-feeds", type=int, default=3)
    parser.add_argument("--links", type=int, default=10)
    args = parser.parse_args()
    site = LocalSite().start()
    workers = Workers(workers=2)  # shared, so that no row pays the workers' start-up
    try:
        serve_site(site)
        asyncio.run(run(site, workers, 0, args.links, args.dns_delay))  # warm-up: starts the workers
        rows = [asyncio.run(run(site, workers, n, args.links, args.dns_delay)) for n in (0, args.dead_feeds)]
    finally:
        workers.shutdown()
        site.stop()
    print(f"dns delay {args.dns_delay:g} s, {args.links} links per dead feed")
    print("| dead feeds beside it | healthy feed (s) | whole poll (s) | DNS lookups |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['dead_feeds']} | {r['healthy_feed_s']} | {r['whole_poll_s']} | {r['lookups']} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
