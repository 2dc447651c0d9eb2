"""Several workers, one database (issue 14): whole workers polling a slow site, and what claiming due feeds costs.

    python bench/scale.py workers                       # 1, 2, 4 `watcher run` on a SQLite file, 200 ms per answer
    python bench/scale.py workers --pg                  # the same on a throwaway PostgreSQL, and PostgreSQL vs SQLite
    python bench/scale.py workers --database postgresql://watcher@127.0.0.1/bench   # an (empty) database of yours
    python bench/scale.py claims                        # claim cost at 100,000 and 1,000,000 feeds (PostgreSQL)
    python bench/scale.py claims --feeds 100000         # one size only

`workers` (bench/workers_run.py): a local site (bench/latency_site.py) on 50 loopback addresses whose every feed
answer takes `--latency` (200 ms: polling is I/O-bound, the cores are not the limit), N feeds in one config file
shared by 1, 2 and 4 `watcher run` processes over one database, for two intervals. Prints a table: feeds/s of the
first (cold) round and of the second (304s), and whether each feed was polled exactly once per interval (its two
requests an interval apart). With `--pg` (or a postgresql:// `--database`), also one worker's cold poll without
latency on PostgreSQL and on SQLite, and their ratio.

`claims`: starts a throwaway PostgreSQL cluster (tests/helpers/postgres.py; needs the server binaries) and prints
  * the claim statement's EXPLAIN ANALYZE (10 feeds from N, a quarter of them due): the plan's index and its time;
  * 1, 2 and 4 claimer threads, each on its own connection, claiming batches of 50 until no due feed is left: claims
    per second and whether every due feed was claimed exactly once.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workers_run import add_worker_options, run_workers_part
from tests.helpers.postgres import PostgresCluster, missing_reason
from watcher.store import PostgresStore
from watcher.store.dialect import POSTGRES
from watcher.store.leases import claim_params, claim_sql
from watcher.store.postgres import connect, migrate, translate

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def fill(url: str, feeds: int) -> None:
    """`feeds` feeds, a quarter of them due (next check before NOW), the rest spread over the next hour."""
    with connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("TRUNCATE feeds RESTART IDENTITY CASCADE")
        conn.execute(
            "INSERT INTO feeds (name, url, interval_s, added_at, next_check_at)"
            " SELECT 'f' || i, 'https://f' || i || '.example/rss', 900, '2026-12-07T00:00:00Z',"
            " to_char(timestamp '2026-12-07 11:45:00' + (i %% 4000) * interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " FROM generate_series(1, %s) AS i",
            (feeds,),
        )
        conn.execute("VACUUM ANALYZE feeds")


def explain(url: str) -> tuple[str, float]:
    with connect(url) as conn:
        rows = [
            r[0]
            for r in conn.execute(
                "EXPLAIN ANALYZE " + translate(claim_sql(POSTGRES, 10)), claim_params("w", NOW, LEASE)
            )
        ]
        conn.rollback()  # EXPLAIN ANALYZE runs the UPDATE: leave the leases untaken
    index = next((line.split(" using ")[1].split()[0] for line in rows if " using " in line), "seq scan")
    total = next(float(line.split(":")[1].split()[0]) for line in rows if line.startswith("Execution Time"))
    return index, total


def claimers(url: str, workers: int, due: int) -> tuple[float, bool]:
    claimed: list[list[int]] = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers + 1)

    def run(slot: int) -> None:
        store = PostgresStore.open(url)
        try:
            barrier.wait()
            while batch := store.claim_due_feeds(f"w{slot}", NOW, LEASE, limit=50):
                ids = [f.id for f in batch]
                claimed[slot].extend(ids)
                # What a worker does once it has polled them: the next check moves on and the lease is given back.
                store.db.execute(
                    "UPDATE feeds SET next_check_at = '2026-12-07T12:15:00Z', lease_owner = NULL, lease_until = NULL"
                    " WHERE id = ANY(?)",
                    (ids,),
                )
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    every = [f for c in claimed for f in c]
    with connect(url, autocommit=True) as conn:  # the same feeds due again for the next run
        conn.execute("UPDATE feeds SET next_check_at = '2026-12-07T11:59:00Z' WHERE id = ANY(%s)", (every,))
    return len(every) / elapsed, len(every) == due and len(set(every)) == due


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part")
    claims = parts.add_parser("claims", help="the claim statement's cost at 100k and 1M feeds (PostgreSQL)")
    claims.add_argument("--feeds", type=int, action="append", help="feeds in the table (repeatable)")
    workers = parts.add_parser("workers", help="1, 2 and 4 whole workers against a slow local site")
    add_worker_options(workers)
    args = parser.parse_args()
    if args.part == "workers":
        run_workers_part(args)
    else:
        run_claims_part(args.feeds if args.part == "claims" else None)


def run_claims_part(feeds: list[int] | None) -> None:
    reason = missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    sizes = feeds or [100_000, 1_000_000]
    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database("bench")
        print("| feeds | due | claim of 10: index | EXPLAIN ANALYZE ms | claimers | claims/s | each due feed once |")
        print("|---:|---:|---|---:|---:|---:|---|")
        for size in sizes:
            fill(url, size)
            with connect(url) as conn:
                due = conn.execute(
                    "SELECT count(*) FROM feeds WHERE next_check_at <= %s", (claim_params("w", NOW, LEASE)[2],)
                ).fetchone()[0]
            index, ms = explain(url)
            for workers in (1, 2, 4):
                rate, exact = claimers(url, workers, due)
                print(
                    f"| {size:,} | {due:,} | {index} | {ms:.2f} | {workers} | {rate:,.0f} | {'yes' if exact else 'NO'} |"
                )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
