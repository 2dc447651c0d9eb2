"""Group commit of the polls that brought no article (watcher/store/grouped.py): together in one transaction,
each poll still told whether its own write failed, the others written all the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from watcher.config_sections import FeedConfig
from watcher.errors import StoreError
from watcher.models import FeedUpdate
from watcher.store.grouped import GroupedPollWrites

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def not_modified(next_in: timedelta = timedelta(minutes=30), **fields) -> FeedUpdate:
    return FeedUpdate(
        feed_url="http://127.0.0.1/f.xml", checked_at=NOW, next_check_at=NOW + next_in, status="not-modified", **fields
    )


class Recorder:
    """A `record` that keeps every group it was given and fails any group holding a feed id in `failing`."""

    def __init__(self, failing: set[int] = frozenset(), error: type[Exception] = StoreError) -> None:
        self.groups: list[list[int]] = []
        self.failing, self.error = failing, error

    async def __call__(self, group) -> None:
        self.groups.append([feed_id for feed_id, _ in group])
        if self.failing & set(self.groups[-1]):
            raise self.error("disk I/O error")


async def test_polls_ending_together_are_written_in_one_group():
    record = Recorder()
    writes = GroupedPollWrites(record)
    await asyncio.gather(*(writes.write(i, not_modified()) for i in range(1, 8)))
    assert record.groups == [[1, 2, 3, 4, 5, 6, 7]]


async def test_a_lone_write_goes_at_once_and_a_burst_is_cut_at_most():
    record = Recorder()
    # An hour's window: a write that waited for it would never finish within the test.
    writes = GroupedPollWrites(record, window=3600, most=3)
    await writes.write(1, not_modified())
    assert record.groups == [[1]]
    writes = GroupedPollWrites(record, window=0, most=3)
    await asyncio.gather(*(writes.write(i, not_modified()) for i in range(10, 17)))
    assert record.groups[1:] == [[10, 11, 12], [13, 14, 15], [16]]


async def test_a_write_that_fails_in_a_group_fails_alone():
    record = Recorder(failing={3})
    writes = GroupedPollWrites(record)
    results = await asyncio.gather(*(writes.write(i, not_modified()) for i in range(1, 6)), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["NoneType", "NoneType", "StoreError", "NoneType", "NoneType"]
    assert record.groups == [[1, 2, 3, 4, 5], [1], [2], [3], [4], [5]]


async def test_a_bug_in_one_group_is_reported_to_its_polls_and_later_writes_go_on():
    record = Recorder(failing={2}, error=RuntimeError)
    writes = GroupedPollWrites(record, window=0)
    first = await asyncio.gather(
        writes.write(1, not_modified()), writes.write(2, not_modified()), return_exceptions=True
    )
    assert [type(r).__name__ for r in first] == ["RuntimeError", "RuntimeError"]
    await writes.write(3, not_modified())
    assert record.groups[-1] == [3]


async def test_a_writer_cancelled_mid_group_cancels_every_poll_waiting_on_it():
    # The daemon's loop shutting down while a group is on the store's thread: no poll is left waiting forever.
    started, never = asyncio.Event(), asyncio.Event()

    async def stuck(group) -> None:
        started.set()
        await never.wait()

    writes = GroupedPollWrites(stuck, window=0)
    in_group = [asyncio.ensure_future(writes.write(i, not_modified())) for i in (1, 2)]
    await started.wait()
    queued = asyncio.ensure_future(writes.write(3, not_modified()))  # waiting for the next group
    await asyncio.sleep(0)  # one step of the loop: it joins the queue
    assert writes._writer is not None
    writes._writer.cancel()
    # (A bound, not a timing: a waiter left behind would otherwise hang the suite.)
    results = await asyncio.wait_for(asyncio.gather(*in_group, queued, return_exceptions=True), 60)
    assert [type(r).__name__ for r in results] == ["CancelledError"] * 3


def test_each_event_loop_gets_its_own_writer():
    record = Recorder()
    writes = GroupedPollWrites(record)
    asyncio.run(writes.write(1, not_modified()))
    asyncio.run(writes.write(2, not_modified()))  # the first loop's writer is gone with its loop
    assert record.groups == [[1], [2]]


def _feed_ids(store, n: int) -> list[int]:
    store.sync_feeds(
        [FeedConfig(name=f"f{i}", url=f"http://127.0.0.1/f/{i}.xml") for i in range(n)],
        timedelta(minutes=30),
        NOW - timedelta(hours=1),
    )
    return [r["id"] for r in store._query("SELECT id FROM feeds ORDER BY id")]


async def test_the_store_writes_a_group_of_polls_in_one_transaction(store):
    ids = _feed_ids(store, 6)
    store.claim_due_feeds("worker-a", NOW, timedelta(minutes=5), limit=6)
    calls = []
    record_polls = store.record_polls

    def counted(group):
        calls.append(len(group))
        return record_polls(group)

    store.record_polls = counted
    errored = FeedUpdate(
        feed_url="x",
        checked_at=NOW,
        next_check_at=NOW + timedelta(hours=2),
        status="error",
        error="HTTP 503",
        error_kind="http",
    )
    updates = [not_modified(etag=f'"v{i}"') for i in ids[:4]] + [not_modified(seen_entry_ids=("e1", "e2")), errored]
    queued = await asyncio.gather(*(store.write_poll(i, u, {}) for i, u in zip(ids, updates, strict=True)))
    assert queued == [0] * 6 and calls == [6]
    rows = store._query("SELECT id, etag, last_status, error_count, lease_owner, next_check_at FROM feeds ORDER BY id")
    assert [r["lease_owner"] for r in rows] == [None] * 6  # every lease ended with its poll
    assert [r["etag"] for r in rows[:4]] == ['"v1"', '"v2"', '"v3"', '"v4"']
    assert [(r["last_status"], r["error_count"]) for r in rows[4:]] == [("not-modified", 0), ("error", 1)]
    assert rows[5]["next_check_at"] == "2026-12-07T11:00:00Z"
    seen = store._query("SELECT feed_id, entry_id FROM seen_entries ORDER BY entry_id")
    assert seen == [{"feed_id": ids[4], "entry_id": "e1"}, {"feed_id": ids[4], "entry_id": "e2"}]


async def test_a_poll_whose_write_fails_does_not_lose_the_others_of_its_group(store):
    ids = _feed_ids(store, 3)
    gone = max(ids) + 1000  # no such feed: its seen entries break the foreign key, so its write fails
    updates = [(ids[0], not_modified()), (gone, not_modified(seen_entry_ids=("x",))), (ids[1], not_modified())]
    results = await asyncio.gather(*(store.write_poll(i, u, {}) for i, u in updates), return_exceptions=True)
    assert results[0] == 0 and results[2] == 0
    assert isinstance(results[1], StoreError)
    rows = store._query("SELECT id, last_status FROM feeds ORDER BY id")
    assert [r["last_status"] for r in rows] == ["not-modified", "not-modified", None]
    assert store._query("SELECT count(*) AS n FROM seen_entries") == [{"n": 0}]


def test_record_polls_refuses_a_poll_that_brought_articles(sqlite_store):
    with pytest.raises(ValueError, match="apply_update"):
        sqlite_store.record_polls([(1, not_modified(also_seen_at=(("http://127.0.0.1/a", None),)))])
