"""`python bench/scale.py workers`: 1, 2 and 4 `watcher run` processes sharing one config and one database, polling
a local site whose every answer takes a set latency (bench/latency_site.py). See bench/scale.py for the table.

Each run: a fresh database, the site started afresh, N feeds spread over the site's 50 addresses, `[fetch]
per_host` 2 shared by the workers, extraction off (polling, not trafilatura, is measured), an interval long
enough for one worker's round. The feeds are put in the database not yet due, and made due at once when every
worker has ticked, so the rounds measure the workers' work, not their one-by-one start. Round 1 is the cold poll (every feed answers 200 with three new items: parse and
write); round 2, one interval later, is 304s. A round's rate is N over the span of its requests at the site.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
[watcher]
database = "{database}"
log_level = "warning"
[schedule]
interval = "{interval}s"
jitter = 0
tick = "1s"
[fetch]
allow_networks = ["127.0.0.0/8"]
per_host = 2
timeout = "30s"
[extract]
enabled = false
workers = 1
[topics.drones]
rule = "drone* AND (plant OR production)"
"""


@dataclass(frozen=True, slots=True)
class Run:
    database: str  # "sqlite" or "postgresql"
    workers: int
    latency: float
    cold_rate: float  # feeds/s, round 1
    warm_rate: float | None  # feeds/s, round 2 (None when only one round was run)
    exact: bool | None  # each feed polled exactly once per interval (None: one round only)
    polls: str  # the per-feed poll counts at the end, e.g. "2 x 500"


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per feed answer (default 0.2)")
    parser.add_argument("--interval", type=int, default=25, help="seconds between two polls of a feed")
    parser.add_argument("--workers", type=int, action="append", help="worker counts (default 1, 2, 4)")
    parser.add_argument("--database", help="a SQLite file (default: a new one per run) or a postgresql:// URL")
    parser.add_argument("--pg", action="store_true", help="a throwaway PostgreSQL cluster (tests/helpers/postgres.py)")
    parser.add_argument(
        "--no-stories", action="store_true", help='[stories] window = "0s": no same-story index (its counters)'
    )


def run_workers_part(args: argparse.Namespace) -> None:
    counts = args.workers or [1, 2, 4]
    work = Path(tempfile.mkdtemp(prefix="watcher-scale-"))
    cluster = None
    try:
        if args.pg:
            from tests.helpers.postgres import PostgresCluster, missing_reason

            reason = missing_reason()
            if reason:
                print(f"skipped: {reason}")
                return
            cluster = PostgresCluster().start()
        runs: list[Run] = []
        for n, count in enumerate(counts):
            database = _database(args, cluster, work, f"w{count}_{n}")
            runs.append(
                _run(database, count, args.feeds, args.latency, args.interval, work / f"run{n}", args.no_stories)
            )
            _print([runs[-1]], header=n == 0)
        if cluster is not None or (args.database or "").startswith("postgresql"):
            # One worker's cold poll with no latency: what the database costs per feed, PostgreSQL against SQLite.
            pg = _run(_database(args, cluster, work, "cold"), 1, args.feeds, 0.0, 0, work / "cold-pg", args.no_stories)
            lite = _run(str(work / "cold.db"), 1, args.feeds, 0.0, 0, work / "cold-sqlite", args.no_stories)
            _print([pg, lite], header=False)
            print(f"\nsingle-worker cold poll, no latency: PostgreSQL / SQLite = {pg.cold_rate / lite.cold_rate:.2f}")
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)  # the databases and the workers' logs of the runs


def _database(args: argparse.Namespace, cluster, work: Path, name: str) -> str:
    if cluster is not None:
        return cluster.create_database(f"bench_{name}_")
    if args.database and args.database.startswith("postgresql"):
        _empty(args.database)
        return args.database
    return str(Path(args.database).with_suffix(f".{name}.db")) if args.database else str(work / f"{name}.db")


def _empty(url: str) -> None:
    """A database of the user's, emptied between runs (every table watcher made, its schema version kept)."""
    from watcher.store.postgres import connect

    with connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'watcher_schema'"
            )
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _run(
    database: str, count: int, feeds: int, latency: float, interval: int, directory: Path, no_stories: bool = False
) -> Run:
    directory.mkdir(parents=True)
    site = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "latency_site.py"), "--feeds", str(feeds), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers: list[subprocess.Popen] = []
    try:
        port = int(site.stdout.readline().split()[1])  # type: ignore[union-attr]
        from bench.latency_site import feed_url

        # One round only (interval 0): the interval is made too long to come back within the run.
        config = CONFIG.format(database=database, interval=interval or 3600)
        config += '[stories]\nwindow = "0s"\n' if no_stories else ""
        config += "".join(f'[[feeds]]\nname = "f{i}"\nurl = "{feed_url(port, 50, i)}"\n' for i in range(feeds))
        (directory / "config.toml").write_text(config)
        store = _feeds_not_yet_due(database, directory / "config.toml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        for n in range(count):
            log = open(directory / f"worker{n}.log", "w")  # noqa: SIM115 - closed with the process below
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "watcher", "--config", str(directory / "config.toml"), "run"],
                    cwd=directory,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        _all_due_once_every_worker_ticks(store, count, workers)
        rounds = 2 if interval else 1
        polls = _wait_rounds(port, feeds, rounds, timeout=60 + rounds * (interval + feeds / 5), workers=workers)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
        site.terminate()
        site.wait(timeout=10)
    first = sorted(times[0] for times in polls.values())
    cold = feeds / max(first[-1] - first[0] + latency, 1e-6)
    warm = exact = None
    if interval:
        second = sorted(times[1] for times in polls.values())
        warm = feeds / max(second[-1] - second[0] + latency, 1e-6)
        # Never twice within an interval: a poll of the same feed by two workers comes at once, a scheduled one an
        # interval after the previous poll *started* (its request may have waited seconds for a slot, so the gap
        # between two requests can be a little under the interval). Half an interval tells the two apart. A third
        # poll is fine when a round took longer than the interval.
        exact = all(b - a >= interval / 2 for t in polls.values() for a, b in pairwise(t))
    tally: dict[int, int] = {}
    for times in polls.values():
        tally[len(times)] = tally.get(len(times), 0) + 1
    kind = "postgresql" if database.startswith("postgresql") else "sqlite"
    return Run(kind, count, latency, cold, warm, exact, ", ".join(f"{k} x {v}" for k, v in sorted(tally.items())))


def _feeds_not_yet_due(database: str, config_path: Path):
    """The config's feeds in the database before any worker starts, due in a day: workers start one by one (a
    few seconds each here), and a round that began with the first would measure their start, not their work."""
    from watcher.config import load_config
    from watcher.store import open_store

    config = load_config(config_path)
    store = open_store(database)
    later = datetime.now(UTC) + timedelta(days=1)
    store.sync_feeds(config.feeds, config.schedule.interval, later)
    return store


def _all_due_once_every_worker_ticks(store, count: int, workers: list[subprocess.Popen]) -> None:
    from watcher.store import to_db_time

    deadline = time.monotonic() + 120
    while len(store.workers()) < count:
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise SystemExit("the workers did not all start")
        time.sleep(0.2)  # polling the workers' rows under a deadline
    with store._write() as conn:  # every feed due now, for every worker at once
        conn.execute("UPDATE feeds SET next_check_at = ?", (to_db_time(datetime.now(UTC)),))
    store.close()


def _wait_rounds(
    port: int, feeds: int, rounds: int, *, timeout: float, workers: list[subprocess.Popen]
) -> dict[int, list[float]]:
    """Poll the site's counts until every feed has had `rounds` requests (under a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as response:
            polls = {int(k): v for k, v in json.loads(response.read()).items()}
        if len(polls) == feeds and all(len(t) >= rounds for t in polls.values()):
            return polls
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise SystemExit(f"not every feed polled {rounds} times in time ({len(polls)} of {feeds} polled)")
        time.sleep(0.2)  # polling the site's counters under a deadline


def _print(runs: list[Run], *, header: bool) -> None:
    if header:
        print(
            "| database | workers | latency ms | cold round feeds/s | 304 round feeds/s | polls per feed | once per interval |"
        )
        print("|---|---:|---:|---:|---:|---|---|")
    for r in runs:
        warm = f"{r.warm_rate:,.1f}" if r.warm_rate is not None else "-"
        exact = "-" if r.exact is None else ("yes" if r.exact else "NO")
        print(
            f"| {r.database} | {r.workers} | {r.latency * 1000:.0f} | {r.cold_rate:,.1f} | {warm} | {r.polls} | {exact} |",
            flush=True,
        )
