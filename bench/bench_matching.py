"""How fast topics match: items per second for the default topics and for 100 topics of the same complexity.

    python bench/bench_matching.py [--limit N] [--topics 100] [--data PATH.jsonl.gz] [--rules RULES.toml]

Three kinds of text, each matched by `match_article` in this process (tokenising included; CPU seconds, so
other work on a shared machine counts less against us):
  feed items     title + description of the real feed items of ../shared/evaldata/datasets/
                 rumca_rss_link_db_2023_world/ (HTML tags stripped; ~300 characters)
  article-sized  a title + the descriptions of 20 items joined (~5,000 characters, an extracted article's size)
  pages          the 181 real news pages of ../shared/evaldata/articles/scrapinghub_article_extraction_benchmark/,
                 extracted by watcher.extract (trafilatura, as the daemon runs it); the extraction is timed too,
                 so "x extract" compares matching with trafilatura on the same articles, at the same moment
Topic sets:
  default        the default topics (watcher/default_config.toml)
  shared lists   100 variants of them: each has its own subject lists (@drone, @dprk, @russia, @troops, each
                 with one extra word: a weapon, a country, an armed force) and shares the others (@supply,
                 @move...), as users reuse lists
  all copied     100 variants in which every list is a copy with an extra word of its own (nothing shared)
The target: with 100 topics, matching at least 10x faster than trafilatura (~57 pages/s per core, docs/architecture.md).
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

from watcher.config import config_from_dict
from watcher.rules import (
    TopicConfig,
    compile_topic,
    match_article,
)

EVALDATA = REPO.parent / "shared" / "evaldata"
DEFAULT_DATA = EVALDATA / "datasets/rumca_rss_link_db_2023_world/items_2023_world_feeds.jsonl.gz"
PAGES = EVALDATA / "articles/scrapinghub_article_extraction_benchmark/html"
DEFAULT_RULES = REPO / "watcher" / "default_config.toml"
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
_OTHER = (
    "airlift ferry lease barter loan escort convoy stockpile consignment tender offset quota embargo waiver".split()
)


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


def extract_pages(folder: Path) -> tuple[list[tuple[str, str]], float]:
    """The pages' (title, text) as the daemon extracts them, and the CPU seconds trafilatura took."""
    from watcher.extract import extract_text

    pages = [(p.name, gzip.decompress(p.read_bytes())) for p in sorted(folder.glob("*.html.gz"))]
    extract_text(pages[0][1], "https://example.org/warm-up")  # imports and first-call setup are not timed
    started = time.process_time()
    out = []
    for name, content in pages:
        extracted = extract_text(content, f"https://example.org/{name}")
        if extracted is not None:
            out.append((extracted.title, extracted.text))
    return out, time.process_time() - started


def variants(topics: tuple[TopicConfig, ...], terms: dict[str, str], count: int, *, share: bool = True):
    """`count` topics built from the default ones (see the module docstring)."""
    out_topics, out_terms = [], dict(terms)
    for k in range(count):
        base = topics[k % len(topics)]
        renamed = {}
        for name, text in terms.items():
            if share and name not in _POOLS:
                continue
            pool = _POOLS.get(name, " ".join(_OTHER)).split()
            renamed[name] = f"{name}_{k}"
            out_terms[f"{name}_{k}"] = f"{pool[k % len(pool)]} OR {text}"
        for name in renamed:  # references inside the copied lists point to the copies
            out_terms[renamed[name]] = _REF.sub(
                lambda m: f"@{renamed.get(m.group(1), m.group(1))}", out_terms[renamed[name]]
            )
        rule = _REF.sub(lambda m: f"@{renamed.get(m.group(1), m.group(1))}", base.rule)
        out_topics.append(TopicConfig(name=f"{base.name}_{k}", rule=rule, min_score=base.min_score))
    return [compile_topic(t, out_terms) for t in out_topics]


def timed(topics, items, repeat: int = 1) -> tuple[float, int]:
    """CPU seconds per pass over the items (the best of `repeat` passes) and the matches found."""
    best, matches = float("inf"), 0
    for _ in range(repeat):
        started = time.process_time()
        matches = 0
        for title, body in items:
            matches += len(match_article(topics, title, body))
        best = min(best, time.process_time() - started)
    return best, matches


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    ap.add_argument("--limit", type=int, default=200_000, help="feed items to read (default: all)")
    ap.add_argument("--topics", type=int, default=100, help="topics in the large sets (default: %(default)s)")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"No items at {args.data}; skipping the matching benchmark.")
        return 0
    with open(args.rules, "rb") as f:
        cfg = config_from_dict(tomllib.load(f), str(args.rules), compile_rules=False)

    started = time.perf_counter()
    sets = {
        "default": [compile_topic(t, cfg.terms) for t in cfg.topics],
        "shared lists": variants(cfg.topics, cfg.terms, args.topics),
        "all copied": variants(cfg.topics, cfg.terms, args.topics, share=False),
    }
    compile_ms = (time.perf_counter() - started) * 1000
    items = load_items(args.data, args.limit)
    long_items = [
        (items[i][0], " ".join(b for _, b in items[i : i + 20])) for i in range(0, min(len(items), 100_000), 20)
    ]
    texts = {"feed items": (items, 1), "article-sized": (long_items, 1)}
    extract_rate = None
    if PAGES.is_dir():
        pages, extract_s = extract_pages(PAGES)
        extract_rate = len(pages) / extract_s
        texts["pages"] = (pages, 5)
    total = sum(len(s) for s in sets.values())
    print(f"compiled {total} topics in {compile_ms:.0f} ms")
    for label, (data, _) in texts.items():
        mean = sum(len(t) + len(b) for t, b in data) / len(data)
        print(f"{label}: {len(data)} texts, mean {mean:.0f} characters")
    if extract_rate:
        print(f"trafilatura (watcher.extract) on the pages: {extract_rate:.0f} pages/s (CPU time, this run)")
    print()
    print(
        f"{'texts':<14} {'topics':<17} {'texts':>7} {'cpu s':>7} {'texts/s':>8} {'matches':>7} {'x 57/s':>7} {'x extract':>9}"
    )
    for label, (data, repeat) in texts.items():
        for kind, topics in sets.items():
            seconds, matches = timed(topics, data, repeat)
            rate = len(data) / seconds
            versus = f"{rate / extract_rate:>8.1f}x" if label == "pages" and extract_rate else f"{'':>9}"
            print(
                f"{label:<14} {len(topics):>3} {kind:<13} {len(data):>7} {seconds:>7.2f} {rate:>8.0f} {matches:>7} "
                f"{rate / TRAFILATURA_PER_CORE:>6.0f}x {versus}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
