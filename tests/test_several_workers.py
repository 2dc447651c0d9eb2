"""Several workers on one database, in one process: each worker is a Store connection of its own on the same file
(as each `watcher run` has), so what is tested is what the database decides. The same behaviour with real
`watcher run` processes is in tests/test_worker_processes.py."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.alerts_support import T0, Recorder, add_articles, article, make_config, statuses
from tests.helpers.concurrently import at_once
from tests.helpers.localsite import InFlight
from watcher.alerts.outbox import LEASE, Dispatcher
from watcher.config import FeedConfig, FetchSettings
from watcher.fetch import Fetcher
from watcher.host_limits import host_share
from watcher.models import FeedState, FeedUpdate
from watcher.sharing import feed_lease
from watcher.store import Store, open_store

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
DIGEST = {"daily": {"type": "console", "mode": "digest", "schedule": "daily at 07:00", "send_empty": True}}
IMMEDIATE = {"now": {"type": "console", "mode": "immediate"}}


def two_workers(database: str, channels):
    """Two dispatchers, each on its own connection to one database, each with its own channel object."""
    config = make_config(channels)
    first, second = open_store(database), open_store(database)
    first.sync_feeds([FeedConfig(f.name, f.url) for f in config.feeds], timedelta(minutes=15), T0)
    recorders = [{c.name: Recorder(c.name) for c in config.channels} for _ in range(2)]
    dispatchers = [Dispatcher(config, s, r) for s, r in zip((first, second), recorders)]
    return config, (first, second), recorders, dispatchers


def both_read_before_either_writes(stores, method: str) -> None:
    """Make `method` of each store wait, after its read, for the other's: both workers then believe the same thing
    (the race the database must settle), whatever the order their threads run in."""
    barrier = threading.Barrier(len(stores), timeout=10)
    for store in stores:
        original = getattr(store, method)

        def read(*args, _original=original, **kwargs):
            value = _original(*args, **kwargs)
            barrier.wait()
            return value

        setattr(store, method, read)


@pytest.mark.parametrize("items", [0, 3], ids=["empty-digest", "three-items"])
async def test_two_workers_racing_for_one_digest_slot_send_it_once(worker_database, items, caplog):
    caplog.set_level(logging.INFO, logger="watcher.alerts")
    config, stores, recorders, dispatchers = two_workers(worker_database, DIGEST)
    stores[0].set_last_digest_at("daily", datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    add_articles(stores[0], config, [article("drone_cooperation") for _ in range(items)], T0 - timedelta(hours=2))
    both_read_before_either_writes(stores, "last_digest_at")
    await asyncio.gather(*(d.run(T0) for d in dispatchers))
    messages = [m for r in recorders for m in r["daily"].messages]
    assert [(m.kind, len(m.items)) for m in messages] == [("digest", items)]
    assert "is another worker's" in caplog.text
    assert Store.last_digest_at(stores[0], "daily") == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # not the wrapped
    await asyncio.gather(*(d.run(T0 + timedelta(minutes=1)) for d in dispatchers))  # nothing more for the slot
    assert sum(len(r["daily"].messages) for r in recorders) == 1
    assert statuses(stores[0]) == ({"sent": items} if items else {})


def dead_owner() -> str:
    """A claim owner on this host whose process has ended (as after a SIGKILL)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}/{proc.pid}/0123456789ab"


async def test_a_worker_killed_after_claiming_the_digest_slot_loses_no_item(worker_database):
    """The slot is taken before the send: a worker that dies between the claim and the send leaves the slot
    marked sent, but every item keeps its pending delivery, and the next pass of another worker sends them."""
    config, stores, recorders, dispatchers = two_workers(worker_database, DIGEST)
    stores[0].set_last_digest_at("daily", datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    add_articles(stores[0], config, [article("drone_cooperation") for _ in range(3)], T0 - timedelta(hours=2))
    slot = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    # What the killed worker had done: the slot claimed, its items claimed for its send, then nothing.
    assert stores[0].claim_digest_slot("daily", slot)
    ids = [d.id for d in stores[0].pending_deliveries("daily", T0)]
    assert len(stores[0].claim_deliveries(ids, T0, T0 + LEASE, dead_owner())) == 3
    assert not stores[1].claim_digest_slot("daily", slot)  # the slot is gone for everyone else
    report = await dispatchers[1].run(T0 + timedelta(seconds=20))
    (digest,) = recorders[1]["daily"].messages
    assert digest.kind == "digest" and sorted(digest.delivery_ids) == sorted(ids) and report.sent == 3
    assert statuses(stores[0]) == {"sent": 3}


async def test_two_workers_passing_at_once_never_send_one_delivery_twice(worker_database):
    config, stores, recorders, dispatchers = two_workers(worker_database, IMMEDIATE)
    both_read_before_either_writes(stores, "pending_deliveries")  # both see every due delivery
    queued = 0
    for minute in range(5):
        now = T0 + timedelta(minutes=minute)
        queued += add_articles(stores[0], config, [article("drone_cooperation") for _ in range(7)], now)
        await asyncio.gather(*(d.run(now) for d in dispatchers))
    delivered = [i for r in recorders for i in r["now"].delivered_ids]
    assert queued == 35 and len(delivered) == 35 and len(set(delivered)) == 35
    assert statuses(stores[0]) == {"sent": 35}


# --- feeds: leases, the config's sync ---------------------------------------------------------------------------


def test_the_write_of_a_poll_ends_its_lease_and_renewals_keep_only_ones_own(store):
    store.sync_feeds([FeedConfig(f"f{i}", f"https://f{i}.example/rss") for i in range(4)], timedelta(minutes=15), NOW)
    mine = store.claim_due_feeds("w1", NOW, timedelta(seconds=30), limit=2)
    theirs = store.claim_due_feeds("w2", NOW, timedelta(seconds=30), limit=2)
    # A renewal covers only the renewer's own leases: w1 cannot keep w2's feeds.
    later = NOW + timedelta(minutes=1)
    assert store.renew_feed_leases("w1", [f.id for f in mine + theirs], later) == 2
    assert store.claim_due_feeds("w3", NOW + timedelta(seconds=40), timedelta(seconds=30), limit=10) == theirs
    update = FeedUpdate(feed_url=mine[0].url, checked_at=NOW, next_check_at=NOW + timedelta(minutes=15), status="ok")
    store.apply_update(mine[0].id, update, {})
    leases = {w["name"]: w["leases"] for w in _ticked(store, ["w1", "w3"])}
    assert leases == {"w1": 1, "w3": 2}
    assert store.release_all_feed_leases("w1") == 1
    assert store.claim_due_feeds("w4", NOW + timedelta(seconds=41), timedelta(seconds=30), limit=10) == [mine[1]]


def _ticked(store: Store, names: list[str]) -> list[dict]:
    for name in names:
        store.record_worker_tick(name, "host", 1, NOW, 0)
    return store.workers()


def test_live_workers_are_those_that_ticked_lately(store):
    for name, ago in (("a", 1), ("b", 5), ("c", 60)):
        store.record_worker_tick(name, "host", 1, NOW - timedelta(seconds=ago), 0)
    assert store.live_workers(NOW - timedelta(seconds=10)) == 2
    assert store.live_workers(NOW - timedelta(seconds=2)) == 1


def test_two_workers_syncing_the_config_at_once_neither_fail_nor_duplicate(worker_database):
    feeds = [FeedConfig(f"f{i}", f"https://f{i}.example/rss") for i in range(200)]
    stores = [open_store(worker_database) for _ in range(3)]
    errors = at_once(*(functools.partial(s.sync_feeds, feeds, timedelta(minutes=15), NOW) for s in stores))
    assert errors == []
    names = [f.name for f in stores[0].due_feeds(NOW)]
    assert sorted(names) == sorted(f.name for f in feeds)
    for s in stores:
        s.close()


# --- the per-host budget ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit, workers, share", [(2, 1, 2), (6, 3, 2), (7, 3, 2), (2, 3, 1), (1, 4, 1), (4, 0, 4)])
def test_each_worker_takes_an_equal_share_of_the_per_host_limit_never_zero(limit, workers, share):
    assert host_share(limit, workers) == share


async def test_a_smaller_share_holds_requests_and_a_larger_one_lets_them_go(site):
    probe = InFlight(hold=0.05)
    url = site.add("/feed.xml", handler=probe)
    settings = FetchSettings(per_host=4, allow_networks=("127.0.0.0/8",))
    async with Fetcher(settings) as fetcher:
        await fetcher.share_hosts(2)  # two live workers: two requests each
        await asyncio.gather(*(fetcher.fetch_feed(FeedState(url)) for _ in range(8)))
        assert probe.peak == 2
        probe.peak = 0
        await fetcher.share_hosts(1)  # alone again: the whole limit
        await asyncio.gather(*(fetcher.fetch_feed(FeedState(url)) for _ in range(8)))
        assert probe.peak == 4 and fetcher.per_host == 4


def test_the_lease_outlasts_the_deadlines_of_a_poll_before_its_first_renewal():
    config = make_config(IMMEDIATE)
    deadlines = config.fetch.timeout + config.extract.timeout  # 30 s + 20 s with the defaults
    assert feed_lease(config) >= deadlines and feed_lease(config) >= 2 * config.schedule.tick  # two ticks of 30 s
    assert feed_lease(config) == timedelta(seconds=60)


def test_workers_opening_a_new_database_at_once_apply_each_migration_once(tmp_path):
    # Six openers lost the race to switch a new file to WAL about one round in ten before base._use_wal retried.
    def open_and_close(path: Path) -> None:
        Store.open(path).close()

    for round_ in range(20):
        path = tmp_path / f"new-{round_}.db"
        assert at_once(*[functools.partial(open_and_close, path)] * 6) == []
    store = Store.open(path)
    assert store.schema_version() > 0 and store.live_workers(NOW) == 0
    store.close()


def test_a_workers_crash_report_is_told_and_a_running_workers_armed_file_left_alone(tmp_path):
    """Workers on one machine share the database's side files: each arms a file of its own (crashlog.py), and a
    starting worker reports and keeps only those of processes that have ended."""
    from watcher.crashlog import crash_file, previous_crash

    base = crash_file(str(tmp_path / "shared.db"))
    dead = int(dead_owner().split("/")[1])
    running = Path(f"{base}.{os.getppid()}")  # the process that started this test: running
    running.write_text("")
    Path(f"{base}.{dead}").write_text("Fatal Python error: Bus error\n\nThread 0x1 (most recent call first):\n")
    assert previous_crash(str(tmp_path / "shared.db")) == "Fatal Python error: Bus error"
    assert running.exists() and not Path(f"{base}.{dead}").exists()
    assert Path(f"{base}.old").read_text().startswith("Fatal Python error: Bus error")
    assert previous_crash(str(tmp_path / "shared.db")) is None  # told once
