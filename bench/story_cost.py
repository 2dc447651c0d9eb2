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
import re
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.models import Article, Entry
from watcher.store import Store
from watcher.store.base import to_db_time
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
            article_id, _ = store._insert_article(conn, article, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
            started = time.process_time()
            store._place_in_story(conn, article_id, article, now, Counter())
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


# --- replay: the labelled pairs decided through the store's own candidate search ---------------------------------


def replay(data: Path, pairs: list[dict], df: Counter[str], documents: int, fill: int) -> dict[str, list[int]]:
    """For each pair (a, b): the ids of the candidates the store's own search (`_candidates`: index keys, postings
    cap, candidate cut) returns for b, with the 72 hours of news before b stored, a among them.

    The corpus items are stored in time order (the pairs' items with the pairs' texts), only over the 72 hours
    before some pair's later item; `fill` more items from months away are stored beside each, restamped to its
    time, so that the window is as full as a busy store's (5: about 2,800 a day, a 1M store's rate). Each b is then
    placed by `_place_in_story` inside a transaction that is rolled back. Returns pair id -> [a's id, candidate
    ids...]; the frequencies are `df`, as the pairwise figures."""
    from watcher.store import stories as store_stories

    corpus = []  # (time, uid, title, text)
    with gzip.open(data / CORPUS, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            item = json.loads(line)
            text = re.sub(r"<[^>]+>", " ", item.get("description") or "")
            corpus.append((_when(item["date_published"]), f"s23-{i:06d}", item.get("title") or "", text))
    own = {p[s]["uid"]: p[s] for p in pairs for s in ("a", "b")}
    window = timedelta(hours=72)
    later = sorted(((_when(p["b"]["published"]), p) for p in pairs), key=lambda x: x[0])
    spans = [(t - window, t) for t, _ in later]
    found: dict[str, list[int]] = {}
    ids: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "replay.db")
        conn = store.db.conn
        conn.executemany("INSERT INTO story_terms (term, df) VALUES (?, ?)", [*df.items(), ("", documents)])
        seen: list[list[int]] = []
        real_candidates = store_stories._candidates

        def capture(*args, **kwargs):
            out = real_candidates(*args, **kwargs)
            seen.append([c.article_id for c in out])
            return out

        store_stories._candidates = capture
        next_id, at, span = 1, 0, 0
        try:
            for stamp, pair in later:
                rows = []
                while at < len(corpus) and corpus[at][0] < stamp:
                    when, uid, title, text = corpus[at]
                    while span < len(spans) and spans[span][1] <= when:
                        span += 1
                    if span < len(spans) and spans[span][0] <= when:
                        if uid in own:
                            title, text = own[uid]["title"], own[uid]["text"]
                        ids[uid] = next_id
                        rows.append((next_id, when, title, text))
                        for k in range(1, fill + 1):  # items from months away, as if from other feeds
                            other = corpus[(at + k * len(corpus) // (fill + 1)) % len(corpus)]
                            rows.append((next_id + k, when, other[2], other[3]))
                        next_id += fill + 1
                    at += 1
                _store_rows(conn, rows, df, documents)
                conn.execute("DELETE FROM story_keys WHERE seen_at < ?", (to_db_time(stamp - window),))
                b = pair["b"]
                url = f"https://replay.example/{pair['pair']}"
                entry = Entry("https://replay.example/feed", pair["pair"], url, url, b["title"], summary=b["text"])
                article = Article(url, b["title"], b["text"], "feed-summary", entry, published_at=stamp)
                seen.clear()
                conn.execute("BEGIN")
                try:
                    article_id, _ = store._insert_article(conn, article, to_db_time(stamp))
                    store._place_in_story(conn, article_id, article, stamp, Counter())
                finally:
                    conn.execute("ROLLBACK")
                found[pair["pair"]] = [ids.get(pair["a"]["uid"], -1), *(seen[0] if seen else [])]
        finally:
            store_stories._candidates = real_candidates
            store.close()
    return found


def _when(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace(" ", "T"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _store_rows(conn, rows, df: Counter[str], documents: int) -> None:
    """Stored articles as the daemon leaves them: story, story terms with their weights, index keys."""
    articles, keys = [], []
    for article_id, when, title, text in rows:
        stamp = to_db_time(when)
        story = StoryText.of(title, text, when)
        weighed = story.weighed(df, documents)
        terms = json.dumps(
            [stamp, sorted(story.title_terms), sorted(story.terms), weighed.weight, weighed.title_weight]
        )
        articles.append(
            (
                article_id,
                f"https://r.example/{article_id}",
                title,
                text,
                "feed-summary",
                stamp,
                stamp,
                article_id,
                terms,
            )
        )
        keys += [(key, stamp, article_id) for key in story.index_keys(df)]
    conn.execute("BEGIN")
    _flush(conn, articles, keys)
    conn.execute("COMMIT")
