"""How fast topics match: items per second for the default topics and for 100 topics of the same complexity.

    python bench/bench_matching.py [--limit N] [--data PATH.jsonl.gz] [--rules watcher/default_topics.toml]

Reads the 168k real feed items of ../shared/evaldata/datasets/rumca_rss_link_db_2023_world/ (title and
description; HTML tags stripped), and times `match_article` in one process: the cost of matching per item,
tokenising included. Rows:
  feed items     title + description, as most feeds give them (median ~150 characters)
  article-sized  title + the descriptions of 20 items joined (~3,000 characters, the size of an extracted
                 article body), to show the cost on full text
The 100 topics are variants of the default topics: each variant gets its own copy of every term list with one
extra word (a weapon for @drone, a country for @dprk, an armed force for @troops...), so no two topics are alike.
For scale: trafilatura extracts ~57 pages/s per core (docs/DESIGN.md); matching must be >= 10x that.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watcher.config import TopicConfig, config_from_dict  # noqa: E402
from watcher.topics import compile_topic, match_article  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared/evaldata/datasets/rumca_rss_link_db_2023_world/items_2023_world_feeds.jsonl.gz"
DEFAULT_RULES = REPO / "watcher" / "default_topics.toml"
TRAFILATURA_PER_CORE = 57.0

_TAG = re.compile(r"<[^>]+>")
_REF = re.compile(r"@([A-Za-z_][A-Za-z0-9_-]*)")
# One extra word per variant and term list, drawn from a pool that fits the list: weapons for @drone, countries
# for @dprk and @russia, armed forces for @troops, verbs or nouns for the others.
_POOLS = {
    "drone": "missile tank artillery howitzer ammunition helicopter submarine warship frigate rifle grenade mortar"
    " HIMARS Patriot Stinger Javelin Leopard Abrams Bradley F-16 Su-35 MiG-29 Iskander Kalibr Kinzhal",
    "dprk": "Iran China Turkey Belarus Syria Israel Poland India Pakistan Egypt Sudan Ethiopia Niger Mali Serbia",
    "russia": "Ukraine Azerbaijan Armenia Georgia Kazakhstan Venezuela Cuba Libya Yemen Lebanon Iraq Somalia Chad",
    "troops": "reservists conscripts militia gendarmes guardsmen legionnaires rangers fusiliers sappers gunners",
}
_OTHER = "airlift ferry lease barter loan escort convoy stockpile consignment tender offset quota embargo waiver".split()
def load_items(path: Path, limit: int) -> list[tuple[str, str]]:
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            body = " ".join(_TAG.sub(" ", d.get("description") or "").split())
            items.append((d.get("title") or "", body))
            if len(items) >= limit:
                break
    return items


def variants(topics: tuple[TopicConfig, ...], terms: dict[str, str], count: int):
    """`count` topics built from the default ones; each has its own term lists (one extra word each)."""
    out_topics, out_terms = [], dict(terms)
    for k in range(count):
        base = topics[k % len(topics)]
        for name, text in terms.items():
            pool = _POOLS.get(name, " ".join(_OTHER)).split()
            extra = pool[k % len(pool)]
            out_terms[f"{name}_{k}"] = f"{extra} OR {_REF.sub(lambda m: f'@{m.group(1)}_{k}', text)}"
        rule = _REF.sub(lambda m: f"@{m.group(1)}_{k}", base.rule)
        out_topics.append(TopicConfig(name=f"{base.name}_{k}", rule=rule, min_score=base.min_score))
    return [compile_topic(t, out_terms) for t in out_topics]


def timed(topics, items) -> tuple[float, int]:
    started = time.perf_counter()
    matches = 0
    for title, body in items:
        matches += len(match_article(topics, title, body))
    return time.perf_counter() - started, matches


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    ap.add_argument("--limit", type=int, default=200_000, help="items to read (default: all)")
    ap.add_argument("--topics", type=int, default=100, help="topics in the large set (default: %(default)s)")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"No items at {args.data}; skipping the matching benchmark.")
        return 0
    with open(args.rules, "rb") as f:
        cfg = config_from_dict(tomllib.load(f), str(args.rules), compile_rules=False)

    started = time.perf_counter()
    default = [compile_topic(t, cfg.terms) for t in cfg.topics]
    many = variants(cfg.topics, cfg.terms, args.topics)
    compile_ms = (time.perf_counter() - started) * 1000
    items = load_items(args.data, args.limit)
    groups = max(1, len(items) // 20)
    long_items = [
        (items[i * 20][0], " ".join(body for _, body in items[i * 20 : i * 20 + 20])) for i in range(min(groups, 5000))
    ]
    mean_short = sum(len(t) + len(b) for t, b in items) / len(items)
    mean_long = sum(len(t) + len(b) for t, b in long_items) / len(long_items)
    print(f"{len(items)} feed items (mean {mean_short:.0f} chars), {len(long_items)} article-sized items "
          f"(mean {mean_long:.0f} chars); compiled {len(default) + len(many)} topics in {compile_ms:.0f} ms")
    print(f"{'items':<14} {'topics':>6} {'items':>7} {'seconds':>8} {'items/s':>9} {'matches':>8} {'x trafilatura/core':>19}")
    for label, data in (("feed items", items), ("article-sized", long_items)):
        for topics in (default, many):
            seconds, matches = timed(topics, data)
            rate = len(data) / seconds
            print(f"{label:<14} {len(topics):>6} {len(data):>7} {seconds:>8.2f} {rate:>9.0f} {matches:>8} "
                  f"{rate / TRAFILATURA_PER_CORE:>18.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
