"""Growth: the cost of storing a new article when 1k articles are stored, against 1M.

    python bench/growth.py [--sizes 1000,1000000] [--new 2000] [--runs 3] [--cache warm,cold] [--pragma P]
    python bench/growth.py --sizes 20000 --callgrind     # instructions per new article, not time
    python bench/growth.py --sizes 20000 --statements    # CPU per new article of each SQL statement (the 8 dearest)

Setup (not measured): a database made by watcher's own migrations, then filled synthetically with fast bulk
inserts straight through sqlite3: `n` articles (short bodies made of real feed text when ../shared/evaldata is
there) arriving at 3,000 a day (1M spans 333 days, so the 72 h story window holds ~9,000 of them, as in a real
store), each with its story, story terms and the document frequencies, the window's articles with their index
keys; one seen entry and one source per article, 2% of them matched with a sent delivery, over 1,000 feeds; the
FTS index is built once at the end with FTS5's 'rebuild' and 'optimize'. The 1M database is cached under
$WATCHER_BENCH_CACHE (default /tmp/watcher-bench-cache), keyed by the migrations' text; each run writes to a
fresh copy of it, so runs do not add up.

Measured: exactly the Store calls one poll makes per feed, for `--new` new articles in feeds of 10 items:
`known_entries` (what update_feed asks), then `apply_update` with a FeedUpdate
carrying the articles (~3 KB bodies, 5% matched, so matches and deliveries are written too): one transaction per
feed, as in `poll`; and the story step's CPU within it. Also the cost of a not-modified FeedUpdate. The last stdout line is JSON.

Page cache (`--cache`): "warm" measures with the database as the previous run left it in the kernel's page
cache; "cold" first asks the kernel to drop the database's cached pages (posix_fadvise DONTNEED on the file and
its -wal, after a checkpoint), as after a reboot or when other work pushed it out. A user's machine sees both, so
both are reported, each with its own 1M/1k ratio.

Instructions (`--callgrind`): the machine's CPU figures move 10-30% from run to run, too much to see a change of a
few percent. This runs the measurement of each size under valgrind twice, 100 and 300 new articles after the same
start (PYTHONHASHSEED=0), and divides the difference of the totals by 200: set-up and imports cancel out. The
count is repeatable to ~1%; `WATCHER_SRC=<a snapshot of watcher/>` measures another commit (bench/common.py).

Story window: at 3,000 articles a day the 72-hour window is full from ~9,000 stored articles on; a smaller store
has fewer articles there to find as candidates, so its new articles cost less. With a middle size (`--sizes
1000,20000,1000000`, as `run_all.py` runs it) `ratio_to` tells the two apart: against 1k the window filling up and
the store growing, against 20k the store growing alone. `--pragma` and `--fts` measure what-ifs on the copy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from watcher.models import Article, Entry, FeedUpdate, Match
from watcher.store import Store
from watcher.store.base import to_db_time
from watcher.store.migrations import MIGRATIONS
from watcher.stories import StorySettings, StoryText

CACHE = Path(os.environ.get("WATCHER_BENCH_CACHE", "/tmp/watcher-bench-cache"))
FEEDS = 1000
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the end of the stored history; new articles arrive just after
ARRIVALS_PER_DAY = 3000  # new articles a day, about what 1,000 feeds bring


def vocabulary_stream() -> list[str]:
    """Words in the order real feed text has them (so their frequencies are natural), or synthetic ones."""
    words: list[str] = []
    for template in common.load_feeds().templates:
        for item in template.items:
            text = re.sub(r"<[^>]+>|&\w+;|&#\d+;", " ", f"{item.title} {item.summary}")
            words += re.findall(r"\w+", text)
            if len(words) > 400_000:
                return words
    return words


def text_of(stream: list[str], rng: random.Random, n: int) -> str:
    start = rng.randrange(0, max(1, len(stream) - n))
    return " ".join(stream[start : start + n])


def schema_key() -> str:
    return hashlib.sha256("\n".join(MIGRATIONS).encode()).hexdigest()[:10]


def build(path: Path, n: int, stream: list[str]) -> dict:
    started = time.perf_counter()
    tmp = path.with_suffix(".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    store = Store.open(tmp)  # watcher's own migrations make the schema
    conn = store.db.conn
    # Setup only: no journal, no syncs, a big page cache. The file is switched back to WAL at the end.
    for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -1000000"):
        conn.execute(f"PRAGMA {pragma}")
    rng = random.Random(n)
    # The articles arrive at a steady rate, as in a real store: 1M spans most of a year, 1k a few hours, and the
    # story window (72 h) holds the same ~9,000 articles of a 1M store as a real one would, not all of them.
    span = timedelta(days=max(n / ARRIVALS_PER_DAY, 1 / 24))
    window_start = T0 - StorySettings().window
    first_stamp = to_db_time(T0 - span)
    trigger = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'articles_ai'").fetchone()[
        0
    ]
    conn.execute("DROP TRIGGER articles_ai")  # the FTS index is rebuilt once at the end: much faster
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO feeds (id, name, url, interval_s, added_at, next_check_at, first_polled_at) VALUES (?, ?, ?, 900, ?, ?, ?)",
        [
            (f + 1, f"filler-{f}", f"https://feeds{f}.example/feed.xml", first_stamp, first_stamp, first_stamp)
            for f in range(FEEDS)
        ],
    )
    # Every stored article has its story (one each: most news is reported once), its story terms and the
    # document frequencies they add up to; the window's articles also have their index keys.
    # Two passes over the same generated texts (same seed): the frequencies first, then the rows that use them,
    # without holding a million texts in memory.
    df: Counter[str] = Counter()
    for _ in range(n):
        df.update(StoryText.of(text_of(stream, rng, 10), text_of(stream, rng, 60)).terms)
    rng = random.Random(n)
    batch = 50_000
    for first in range(0, n, batch):
        rows, seen, sources, matches, deliveries, stories, keys = [], [], [], [], [], [], []
        for a in range(first, min(n, first + batch)):
            feed = a % FEEDS + 1
            url = f"https://news{feed}.example/2025/{a}.html"
            matched = 1 if a % 50 == 0 else 0
            when = T0 - span + span * (a / n)
            stamp = to_db_time(when)
            title, body = text_of(stream, rng, 10), text_of(stream, rng, 60)
            text = StoryText.of(title, body)
            weighed = text.weighed(df, n)
            story_terms = json.dumps(
                [stamp, sorted(text.title_terms), sorted(text.terms), weighed.weight, weighed.title_weight]
            )
            rows.append((a + 1, url, title, body, "page", "", "en", stamp, stamp, matched, a + 1, story_terms))
            stories.append((a + 1, title, stamp, stamp))
            if when >= window_start:
                keys += [(key, stamp, a + 1) for key in text.index_keys(df)]
            seen.append((feed, f"id:{url}", stamp))
            sources.append((a + 1, feed, f"id:{url}", url, stamp))
            if matched:
                matches.append((a + 1, "troop_deployment", 1.0, '["troops"]', "... [[troops]] ...", stamp))
                deliveries.append((a + 1, "troop_deployment", "inbox", "sent", stamp, stamp, 1, stamp))
        conn.executemany(
            "INSERT INTO stories (id, headline, first_seen, last_seen, sources, articles) VALUES (?, ?, ?, ?, 1, 1)",
            stories,
        )
        conn.executemany(
            "INSERT INTO articles (id, url, title, body, body_source, author, language, published_at, fetched_at, matched,"
            " story_id, story_terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT OR IGNORE INTO story_keys (key, seen_at, article_id) VALUES (?, ?, ?)", keys)
        conn.executemany("INSERT INTO seen_entries (feed_id, entry_id, seen_at) VALUES (?, ?, ?)", seen)
        conn.executemany(
            "INSERT INTO article_sources (article_id, feed_id, entry_id, link, seen_at) VALUES (?, ?, ?, ?, ?)", sources
        )
        conn.executemany(
            "INSERT INTO matches (article_id, topic, score, terms, snippet, matched_at) VALUES (?, ?, ?, ?, ?, ?)",
            matches,
        )
        conn.executemany(
            "INSERT INTO deliveries (article_id, topic, channel, status, created_at, next_attempt_at, attempts, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            deliveries,
        )
    conn.executemany("INSERT INTO story_terms (term, df) VALUES (?, ?)", [*df.items(), ("", n)])
    fts_started = time.perf_counter()
    conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('rebuild')")
    rebuild_s = time.perf_counter() - fts_started
    # 'rebuild' leaves the index in pieces with a merge of nearly all of it pending, which the next few
    # thousand inserts would each pay a share of: a state a store grown one feed at a time is not in. 'optimize'
    # merges it into one segment, as after the store's last big merge (see the amortised row for what later
    # merges cost on average).
    fts_started = time.perf_counter()
    conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('optimize')")
    optimize_s = time.perf_counter() - fts_started
    conn.execute(trigger)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = WAL")
    store.close()
    tmp.rename(path)
    return {
        "articles": n,
        "span_days": round(span / timedelta(days=1), 2),
        "build_s": round(time.perf_counter() - started, 1),
        "fts_rebuild_s": round(rebuild_s, 1),
        "fts_optimize_s": round(optimize_s, 1),
    }


def database(n: int, stream: list[str], fresh_dir: Path) -> tuple[Path, dict]:
    """The filled database for n articles: the cached one for big n, a new one for small n."""
    if n < 100_000:
        path = fresh_dir / f"growth-{n}.db"
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        return path, build(path, n, stream) | {"cached": False}
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"growth-{n}-{schema_key()}.db"
    if path.exists():
        return path, {"articles": n, "cached": True}
    return path, build(path, n, stream) | {"cached": False}


def evict(path: Path) -> None:
    """Drop the database's pages from the kernel's page cache (clean pages only: checkpointed first)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for p in (path, Path(f"{path}-wal")):
        if p.exists():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def set_fts(path: Path, spec: str) -> None:
    """What-if: FTS5 settings (`automerge=16,crisismerge=64`) written into the database before measuring."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        for item in filter(None, spec.split(",")):
            name, value = item.split("=")
            conn.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES (?, ?)", (name.strip(), int(value)))


def measure(
    base: Path,
    new: int,
    stream: list[str],
    tag: str,
    per_feed: int = 10,
    cold: bool = False,
    fts: str = "",
    pragmas: str = "",
    statements: Counter[str] | None = None,
) -> dict:
    # Each run writes to a fresh copy of the built database: runs do not add up (the cached 1M store would
    # otherwise drift, each run's articles and index segments making the next one dearer), and all see one state.
    path = base.with_name(f"run-{base.name}")
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    shutil.copyfile(base, path)
    if fts:
        set_fts(path, fts)  # on the copy: the cached database stays as built
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the copy's writing-back must not overlap the measurement
    finally:
        os.close(fd)
    if cold:
        evict(path)
    store = Store.open(path)
    for pragma in filter(None, (p.strip() for p in pragmas.split(";"))):
        store.db.conn.execute(f"PRAGMA {pragma}")  # what-if, on the store's own connection
    if statements is not None:
        store.db.conn = _TimedStatements(store.db.conn, statements)  # type: ignore[assignment]
    rng = random.Random(tag)
    routes = {"troop_deployment": ("inbox",), "drone_cooperation": ("inbox",)}
    feeds = [r[0] for r in store.db.conn.execute("SELECT id FROM feeds ORDER BY id LIMIT ?", (FEEDS,))]
    now = T0 + timedelta(minutes=5)
    updates = []
    for b in range(new // per_feed):
        feed_id = feeds[b % len(feeds)]
        articles = []
        for j in range(per_feed):
            url = f"https://news{feed_id}.example/new/{tag}/{b}-{j}.html"
            entry = Entry(
                feed_url=f"https://feeds{feed_id}.example/feed.xml",
                entry_id=f"id:{url}",
                url=url,
                link=url,
                title=text_of(stream, rng, 10),
                summary=text_of(stream, rng, 40),
                published_at=now,
            )
            matches = (
                (Match("troop_deployment", 2.0, ("troops", "deployed"), "... [[troops]] were [[deployed]] ..."),)
                if rng.random() < 0.05
                else ()
            )
            articles.append(
                Article(
                    url=url,
                    title=entry.title,
                    body=text_of(stream, rng, 500),
                    body_source="page",
                    entry=entry,
                    language="en",
                    published_at=now,
                    matches=matches,
                )
            )
        updates.append((feed_id, articles))
    # The story step's share (issue 12's decision: index lookup, scoring, writes), timed inside apply_update.
    story_cpu = [0.0]
    place = store._place_in_story

    def timed_place(*args):
        started = time.process_time()
        try:
            return place(*args)
        finally:
            story_cpu[0] += time.process_time() - started

    store._place_in_story = timed_place  # type: ignore[method-assign]
    started = time.perf_counter()
    cpu0 = time.process_time()
    for feed_id, articles in updates:
        ids = [a.entry.entry_id for a in articles]
        seen, stored = store.known_entries(feed_id, [(a.entry.entry_id, a.url) for a in articles])
        assert not seen and not stored
        update = FeedUpdate(
            feed_url="",
            checked_at=now,
            next_check_at=now + timedelta(minutes=15),
            status="ok",
            etag='"x"',
            seen_entry_ids=tuple(ids),
            articles=tuple(articles),
            alert=True,
            entries_in_feed=len(articles),
        )
        store.apply_update(feed_id, update, routes)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    # Not-modified updates: the warm poll's only write.
    started304 = time.perf_counter()
    for feed_id in feeds[:500]:
        store.apply_update(
            feed_id,
            FeedUpdate(
                feed_url="",
                checked_at=now,
                next_check_at=now + timedelta(minutes=15),
                status="not-modified",
                etag='"x"',
            ),
            routes,
        )
    wall304 = time.perf_counter() - started304
    size = path.stat().st_size
    store.close()
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    return {
        "us_per_article": round(1e6 * wall / new, 1),
        "cpu_us_per_article": round(1e6 * cpu / new, 1),
        "story_cpu_us_per_article": round(1e6 * story_cpu[0] / new, 1),
        "us_per_304_update": round(1e6 * wall304 / 500, 1),
        "db_mb": round(size / 2**20),
    }


class _TimedStatements:
    """The store's connection, adding each statement's CPU seconds to `spent` under its first 70 characters.
    Rows are fetched inside the timing: SQLite does a query's work as its rows are stepped through."""

    def __init__(self, conn, spent: Counter[str]):
        self._conn, self._spent = conn, spent

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    def _timed(self, run, sql: str, *args):
        started = time.process_time()
        try:
            cursor = run(sql, *args)
            return _Fetched(cursor.fetchall(), cursor.rowcount) if cursor.description else cursor
        finally:
            self._spent[" ".join(sql.split())[:70]] += time.process_time() - started

    def execute(self, sql: str, *args):
        return self._timed(self._conn.execute, sql, *args)

    def executemany(self, sql: str, *args):
        return self._timed(self._conn.executemany, sql, *args)


class _Fetched:
    """A cursor's rows, already fetched."""

    def __init__(self, rows: list, rowcount: int):
        self._rows, self.rowcount = rows, rowcount

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return self._rows

    def __iter__(self):
        return iter(self._rows)


def count_statements(dbs: dict[int, Path], new: int, stream: list[str]) -> None:
    print("| stored articles | statement (first 70 characters) | CPU us a new article |\n|---|---|---|")
    for n, path in dbs.items():
        spent: Counter[str] = Counter()
        measure(path, new, stream, "statements", statements=spent)
        for sql, seconds in spent.most_common(8):
            print(f"| {n:,} | `{sql}` | {1e6 * seconds / new:,.0f} |")


def instructions(path: Path, new: int, stream_file: Path) -> int:
    """The instructions of this script's `--measured-run` of `new` articles on `path`, counted by callgrind."""
    args = ["--measured-run", str(path), "--stream", str(stream_file), "--new", str(new)]
    return common.callgrind_instructions(__file__, args, os.environ | {"PYTHONHASHSEED": "0"})  # same set orders


def count_instructions(dbs: dict[int, Path], stream: list[str], scratch: Path) -> None:
    stream_file = scratch / "stream.json"
    stream_file.write_text(json.dumps(stream))
    print(f"watcher from {common.SRC}")
    print("| stored articles | instructions a new article (callgrind; 100 and 300 new) |\n|---|---|")
    for n, path in dbs.items():
        small, large = instructions(path, 100, stream_file), instructions(path, 300, stream_file)
        print(f"| {n:,} | {(large - small) / 200:,.0f} ({small:,} and {large:,} in all) |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,1000000")
    p.add_argument("--new", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cache", default="warm,cold", help="page cache states to measure: warm, cold or both")
    p.add_argument("--fts", default="", help="what-if FTS5 settings written first, e.g. automerge=16,crisismerge=64")
    p.add_argument(
        "--pragma",
        default="",
        help="what-if SQLite PRAGMAs set on the store's connection, ';'-separated, e.g. 'cache_size=-65536'",
    )
    p.add_argument("--callgrind", action="store_true", help="instructions per new article instead of time")
    p.add_argument("--statements", action="store_true", help="where a new article's write goes, statement by statement")
    p.add_argument("--measured-run", type=Path, help=argparse.SUPPRESS)  # what valgrind runs: one measure()
    p.add_argument("--stream", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measured_run:
        measure(args.measured_run, args.new, json.loads(args.stream.read_text()), "callgrind")
        return
    if args.callgrind and not shutil.which("valgrind"):
        print("valgrind is not installed: instruction counts skipped")
        return
    import tempfile

    stream = vocabulary_stream() or " ".join(common._sentence(random.Random(3), 20) for _ in range(20000)).split()
    fresh = Path(tempfile.mkdtemp(prefix="watcher-growth-"))
    # The store size from which the story window holds as many articles as it ever will (run_all.py's labels).
    full_window = round(ARRIVALS_PER_DAY * StorySettings().window / timedelta(days=1))
    out: dict = {"new_per_run": args.new, "runs": args.runs, "full_window_articles": full_window, "sizes": {}}
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    try:
        dbs = {n: database(n, stream, fresh) for n in (int(s) for s in args.sizes.split(","))}
        if args.callgrind:
            count_instructions({n: path for n, (path, _) in dbs.items()}, stream, fresh)
            return
        if args.statements:
            count_statements({n: path for n, (path, _) in dbs.items()}, args.new, stream)
            return
        caches = [c.strip() for c in args.cache.split(",") if c.strip()]
        # Interleave the sizes run by run, so machine noise hits both alike.
        results: dict[tuple[str, int], list[dict]] = {(c, n): [] for c in caches for n in dbs}
        for r in range(args.runs):
            for c in caches:
                for n, (path, _) in dbs.items():
                    results[c, n].append(
                        measure(
                            path,
                            args.new,
                            stream,
                            f"{stamp}-{c}-{r}",
                            cold=c == "cold",
                            fts=args.fts,
                            pragmas=args.pragma,
                        )
                    )
        sizes = sorted(dbs)
        out["by_cache"] = {}
        for c in caches:
            by_size: dict[str, dict] = {}
            for n, (path, setup) in dbs.items():
                rows = results[c, n]
                by_size[str(n)] = setup | {
                    "us_per_article": common.median([x["us_per_article"] for x in rows]),
                    "cpu_us_per_article": common.median([x["cpu_us_per_article"] for x in rows]),
                    "story_cpu_us_per_article": common.median([x["story_cpu_us_per_article"] for x in rows]),
                    "us_per_304_update": common.median([x["us_per_304_update"] for x in rows]),
                    "db_mb": rows[-1]["db_mb"],
                    "runs_us_per_article": [x["us_per_article"] for x in rows],
                }
            small, big = by_size[str(sizes[0])], by_size[str(sizes[-1])]
            out["by_cache"][c] = {
                "sizes": by_size,
                "ratio": round(big["us_per_article"] / small["us_per_article"], 2),
                "ratio_cpu": round(big["cpu_us_per_article"] / small["cpu_us_per_article"], 2),
                "ratio_304": round(big["us_per_304_update"] / small["us_per_304_update"], 2),
                # The largest against each smaller size: from a size whose story window is full (20k at 3,000 a
                # day), what is left is the store's own growth, not the window filling up.
                "ratio_to": {
                    str(n): round(big["us_per_article"] / by_size[str(n)]["us_per_article"], 2) for n in sizes[:-1]
                },
            }
        # The first cache state asked for is also the top level, as before (run_all.py reads it).
        out |= out["by_cache"][caches[0]]
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
