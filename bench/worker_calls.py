"""The worker round trips per article: extract then match (two calls), against read_article (one call).

    python bench/worker_calls.py [--pages 200] [--rounds 2]

The same real pages (../shared/evaldata, else synthetic) and the repository's config.toml topics go through one
warm Workers pool both ways, alternated round by round so that other load hits both alike. Reported per article:
wall, the parent's CPU (what the event loop pays: pickling, IPC) and the workers' CPU. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from poll import repo_topics

from watcher.config import config_from_dict
from watcher.errors import ExtractError
from watcher.models import FetchedPage
from watcher.rules import RuleSet
from watcher.workers import Workers


def tree_cpu_s() -> float:
    me = os.getpid()
    return sum(common.cpu_seconds(pid) for pid in [me, *common.descendants(me)])


async def two_calls(workers: Workers, rules: RuleSet, page: FetchedPage) -> None:
    try:
        extracted = await workers.extract(page)
        body = extracted.text
    except ExtractError:
        body = ""
    await workers.match(rules, "", body)


async def one_call(workers: Workers, rules: RuleSet, page: FetchedPage) -> None:
    await workers.read_article(page, rules, "", "", "none")


async def run(args: argparse.Namespace) -> dict:
    topics, terms, _ = repo_topics()
    config = config_from_dict({"topics": topics, "terms": terms})
    rules = RuleSet.of(config.topics, config.terms)
    pages = [FetchedPage(url=f"http://127.0.0.1/{n}", content=c) for n, c in common.load_pages().pages[: args.pages]]
    workers = Workers(common.cores(), 30.0)
    out: dict = {}
    try:
        await workers.read_article(pages[0], rules, "", "", "none")  # warm: start-up, imports, rules compiled
        await two_calls(workers, rules, pages[0])
        for r in range(args.rounds):
            for name, how in (("extract+match", two_calls), ("read_article", one_call)):
                started, parent0, all0 = time.perf_counter(), time.process_time(), tree_cpu_s()
                await asyncio.gather(*(how(workers, rules, p) for p in pages))
                wall, parent = time.perf_counter() - started, time.process_time() - parent0
                total = tree_cpu_s() - all0
                row = out.setdefault(name, {"wall_ms": [], "parent_cpu_ms": [], "workers_cpu_ms": []})
                row["wall_ms"].append(round(1000 * wall / len(pages), 2))
                row["parent_cpu_ms"].append(round(1000 * parent / len(pages), 2))
                row["workers_cpu_ms"].append(round(1000 * (total - parent) / len(pages), 2))
    finally:
        workers.shutdown()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    out = asyncio.run(run(args))
    print("| per article | wall ms | parent CPU ms | workers CPU ms |\n|---|---|---|---|")
    for name, row in out.items():
        print(
            f"| {name} | {common.median(row['wall_ms']):.2f} | {common.median(row['parent_cpu_ms']):.2f} |"
            f" {common.median(row['workers_cpu_ms']):.2f} |"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
