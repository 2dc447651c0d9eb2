"""The CPU cost of the story step per new article, with N articles already stored (used by eval_stories.py --cost).

A real store file is built with N stored articles: titles and summaries of the 2023 world-news feed items (cycled
under new URLs when N is larger), spread evenly over `--days` so that the 72 h window holds its share of them, each
with its story, its index keys (for the window only, as the daemon keeps them) and the document frequencies. Then
held-back items are written one by one through the store's own story step, inside a write transaction like
apply_update's, and the process CPU time of that step is measured (index lookup, scoring, writes).
"""

from __future__ import annotations

import gzip
import json
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.models import Article, Entry
from watcher.store import Store
from watcher.stories import StoryText

CORPUS = "datasets/rumca_rss_link_db_2023_world/items_2023_world_feeds.jsonl.gz"
EXTRACTION_CPU_MS = 72.6  # trafilatura CPU ms per page, bench/README.md (limits)
NEW_ARTICLES = 300
DAYS = 365


def _items(data: Path, limit: int) -> list[tuple[str, str]]:
    out = []
    with gzip.open(data / CORPUS, "rt", encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            out.append((item.get("title") or "", item.get("description") or ""))
            if len(out) >= limit:
                break
    return out


def build(path: Path, items: list[tuple[str, str]], stored: int, now: datetime, window: timedelta, days: int) -> Store:
    store = Store.open(path)
    texts = [StoryText.of(t, s) for t, s in items]
    span = timedelta(days=days)
    df: Counter[str] = Counter()
    for t in texts:
        df.update(t.terms)
    conn = store.db.conn
    conn.execute("BEGIN")
    batch_a, batch_k = [], []
    for n in range(stored):
        i = n % len(items)
        title, summary = items[i]
        when = now - span + span * (n / max(stored, 1))
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        text = texts[i]
        terms = json.dumps([stamp, sorted(text.title_terms), sorted(text.terms)])
        batch_a.append((n + 1, f"https://n.example/{n}", title, summary, "feed-summary", stamp, stamp, n + 1, terms))
        if when >= now - window:
            batch_k += [(key, stamp, n + 1) for key in text.index_keys(df)]
        if len(batch_a) >= 20000:
            _flush(conn, batch_a, batch_k)
            batch_a, batch_k = [], []
    _flush(conn, batch_a, batch_k)
    conn.executemany("INSERT INTO story_terms (term, df) VALUES (?, ?)", [*df.items(), ("", len(items))])
    conn.execute("COMMIT")
    return store


def _flush(conn, articles, keys) -> None:
    conn.executemany(
        "INSERT INTO stories (id, headline, first_seen, last_seen, sources, articles) VALUES (?, ?, ?, ?, 1, 1)",
        [(a[0], a[2], a[5], a[5]) for a in articles],
    )
    conn.executemany(
        "INSERT INTO articles (id, url, title, body, body_source, published_at, fetched_at, story_id, story_terms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        articles,
    )
    conn.executemany("INSERT OR IGNORE INTO story_keys (key, seen_at, article_id) VALUES (?, ?, ?)", keys)


def cost_per_article(store: Store, new: list[tuple[str, str]], now: datetime) -> tuple[float, float]:
    """Median and 95th percentile CPU ms of the story step for each new article."""
    spent = []
    for k, (title, summary) in enumerate(new):
        url = f"https://new.example/{k}"
        entry = Entry("https://new.example/feed", f"e{k}", url, url, title, summary=summary)
        article = Article(url, title, summary, "feed-summary", entry, published_at=now)
        with store._write() as conn:
            article_id = store._insert_article(conn, article, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
            started = time.process_time()
            store._place_in_story(conn, article_id, article, now)
            spent.append((time.process_time() - started) * 1000)
    spent.sort()
    return statistics.median(spent), spent[int(len(spent) * 0.95)]


def measure(data: Path, sizes: list[int], *, days: int = DAYS) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    window = timedelta(hours=72)
    items = _items(data, 200_000)
    held_back, corpus = items[-NEW_ARTICLES:], items[:-NEW_ARTICLES]
    print(f"\nCPU cost of the story step per new article ({NEW_ARTICLES} new articles, stored spread over {days} days)")
    print(f"{'stored':>10}{'in window':>11}{'index rows':>12}{'median ms':>11}{'p95 ms':>9}{'of extraction':>15}")
    for stored in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = build(Path(tmp) / "cost.db", corpus, stored, now, window, days)
            in_window = store.db.execute("SELECT count(DISTINCT article_id) FROM story_keys").fetchone()[0]
            rows = store.db.execute("SELECT count(*) FROM story_keys").fetchone()[0]
            median, p95 = cost_per_article(store, held_back, now)
            store.close()
        share = median / EXTRACTION_CPU_MS
        print(f"{stored:>10,}{in_window:>11,}{rows:>12,}{median:>11.2f}{p95:>9.2f}{share:>14.1%}")
