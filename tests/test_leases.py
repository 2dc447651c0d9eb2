"""Due feeds claimed with a lease: each due feed goes to exactly one worker, and a dead worker's leases lapse."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from tests.helpers.concurrently import at_once
from watcher.config import FeedConfig
from watcher.store import PostgresStore
from watcher.store.postgres import connect, migrate, translate

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def test_sqlite_claims_each_due_feed_once_and_takes_over_lapsed_leases(store):
    store.sync_feeds([FeedConfig(f"f{i}", f"https://f{i}.example/rss") for i in range(25)], timedelta(minutes=15), NOW)
    first = store.claim_due_feeds("w1", NOW, LEASE, limit=10)
    second = store.claim_due_feeds("w2", NOW, LEASE, limit=100)
    assert len(first) == 10 and len(second) == 15
    assert {f.id for f in first}.isdisjoint(f.id for f in second)
    assert store.claim_due_feeds("w3", NOW + timedelta(minutes=1), LEASE, limit=100) == []
    # w1 finished two of its feeds and gave them back; w2 died: after its lease, w3 takes its 15 and those two.
    assert store.release_feed_leases("w1", [first[0].id, first[1].id]) == 2
    assert store.release_feed_leases("w2", [first[2].id]) == 0  # not w2's to give back
    taken = store.claim_due_feeds("w3", NOW + LEASE, LEASE, limit=100)
    assert {f.id for f in taken} == {f.id for f in second} | {first[0].id, first[1].id} | {f.id for f in first[2:]}
    store.record_worker_tick("w3", "host-a", 4242, NOW, feeds_polled=3)
    store.record_worker_tick("w3", "host-a", 4242, NOW + LEASE, feeds_polled=2)
    (worker,) = store.workers()
    assert (worker["host"], worker["pid"], worker["feeds_polled"], worker["leases"]) == ("host-a", 4242, 5, 25)
    assert worker["last_tick_at"] == "2026-12-07T01:05:00Z"


def _add_feeds(url: str, count: int) -> None:
    stamp = "2026-12-07T00:00:00Z"
    with connect(url) as conn:
        migrate(conn)
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO feeds (name, url, interval_s, added_at, next_check_at) VALUES (%s, %s, 900, %s, %s)",
                [(f"f{i}", f"https://f{i}.example/rss", stamp, stamp) for i in range(count)],
            )
        conn.commit()


def test_postgresql_workers_claiming_at_once_never_share_a_feed(postgres_url):
    _add_feeds(postgres_url, 300)
    claimed: dict[str, list[int]] = {}
    stores = {f"w{i}": PostgresStore.open(postgres_url) for i in range(6)}

    def claimer(name: str) -> None:
        mine: list[int] = []
        while batch := stores[name].claim_due_feeds(name, NOW, LEASE, limit=7):
            mine.extend(f.id for f in batch)
        claimed[name] = mine

    try:
        assert at_once(*(functools.partial(claimer, name) for name in stores)) == []
    finally:
        for store in stores.values():
            store.close()
    every = [feed for mine in claimed.values() for feed in mine]
    assert len(every) == 300 and len(set(every)) == 300  # each due feed claimed once, none lost


def test_postgresql_a_claim_in_progress_is_skipped_not_waited_for(postgres_url):
    """Worker A's claim is not committed yet (its rows are locked): worker B gets other feeds at once."""
    _add_feeds(postgres_url, 10)
    from watcher.store.dialect import POSTGRES
    from watcher.store.leases import claim_params, claim_sql

    b = PostgresStore.open(postgres_url)
    try:
        with connect(postgres_url) as a:
            held = {r[0] for r in a.execute(translate(claim_sql(POSTGRES, 4)), claim_params("a", NOW, LEASE))}
            b.pg.raw.execute("SET lock_timeout = '5s'")  # were B to wait on A's locks, it would fail here, not hang
            taken = {f.id for f in b.claim_due_feeds("b", NOW, LEASE, limit=100)}
            assert len(held) == 4 and len(taken) == 6 and held.isdisjoint(taken)
            a.commit()
            assert b.claim_due_feeds("b", NOW, LEASE, limit=100) == []  # A's committed leases exclude them now
    finally:
        b.close()


def test_postgresql_a_dead_workers_leases_lapse_and_are_taken_over(postgres_url):
    _add_feeds(postgres_url, 20)
    store = PostgresStore.open(postgres_url)
    try:
        dead = store.claim_due_feeds("dead", NOW, LEASE, limit=8)
        alive = store.claim_due_feeds("alive", NOW, LEASE, limit=100)
        assert len(dead) == 8 and len(alive) == 12
        assert store.claim_due_feeds("alive", NOW + LEASE - timedelta(seconds=1), LEASE, limit=100) == []
        assert store.release_feed_leases("alive", [f.id for f in alive]) == 12
        after = store.claim_due_feeds("alive", NOW + LEASE, LEASE, limit=100)
        assert {f.id for f in after} == {f.id for f in dead} | {f.id for f in alive}
        store.record_worker_tick("alive", "host-b", 7, NOW, feeds_polled=20)
        row = store.db.execute("SELECT host, pid, feeds_polled, last_tick_at FROM workers").fetchone()
        assert row == ("host-b", 7, 20, "2026-12-07T01:00:00Z")
    finally:
        store.close()


def test_the_claim_query_uses_the_schedule_index(postgres_url):
    _add_feeds(postgres_url, 2000)
    with connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE feeds")
        from watcher.store.dialect import POSTGRES
        from watcher.store.leases import claim_params, claim_sql

        plan = "\n".join(
            r[0] for r in conn.execute("EXPLAIN " + translate(claim_sql(POSTGRES, 10)), claim_params("w", NOW, LEASE))
        )
        assert "feeds_next_check" in plan, plan


def test_status_and_metrics_show_each_worker(tmp_path):
    from click.testing import CliRunner

    from watcher.cli import main
    from watcher.metrics import gauges
    from watcher.store import Store

    store = Store.open(tmp_path / "w.db")
    store.sync_feeds([FeedConfig("a", "https://a.example/rss")], timedelta(minutes=15), NOW)
    store.claim_due_feeds("box-1:77:1", NOW, LEASE, limit=5)
    store.record_worker_tick("box-1:77:1", "box-1", 77, NOW, feeds_polled=4)
    store.record_worker_tick("old:1:1", "old", 1, NOW - timedelta(days=2), feeds_polled=9)  # pruned by the next tick
    store.record_worker_tick("box-2:88:1", "box-2", 88, NOW, feeds_polled=0)
    samples = {(s.name, dict(s.labels).get("host")): s.value for s in gauges(store)}
    store.close()
    assert samples[("watcher_worker_feeds_polled", "box-1")] == 4
    assert samples[("watcher_worker_leases", "box-1")] == 1
    assert samples[("watcher_worker_leases", "box-2")] == 0
    assert samples[("watcher_worker_last_tick_timestamp_seconds", "box-2")] == NOW.timestamp()
    assert ("watcher_worker_feeds_polled", "old") not in samples
    config = tmp_path / "config.toml"
    config.write_text('[[feeds]]\nname = "a"\nurl = "https://a.example/rss"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(config), "--db", str(tmp_path / "w.db"), "status"])
    assert result.exit_code == 0, result.output
    assert "box-1 pid 77" in result.output and "4 feeds polled, 1 leases held" in result.output
    assert "box-2 pid 88" in result.output and "old pid" not in result.output
