"""The outbox through a real Store: batching, digest slots, retries, dead letters, claims, and crashes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.alerts_support import (
    T0,
    Recorder,
    add_articles,
    article,
    make_config,
    open_store,
    retryable,
    statuses,
)
from watcher.alerts.outbox import LEASE, Dispatcher
from watcher.errors import PermanentDeliveryError
from watcher.store import Store

IMMEDIATE = {"now": {"type": "console", "mode": "immediate"}}
DIGEST = {"daily": {"type": "console", "mode": "digest", "schedule": "daily at 07:00"}}


def setup(tmp_path, channels, **kw):
    config = make_config(channels, **kw)
    store = open_store(tmp_path, config)
    recorders = {c.name: Recorder(c.name) for c in config.channels}
    return config, store, recorders, Dispatcher(config, store, recorders)


async def test_a_burst_of_matches_is_one_immediate_message_and_is_never_sent_twice(tmp_path):
    config, store, rec, dispatcher = setup(tmp_path, IMMEDIATE)
    assert add_articles(store, config, [article("drone_cooperation") for _ in range(30)], T0) == 30
    report = await dispatcher.run(T0)
    assert report.sent == 30 and report.messages == 1
    assert len(rec["now"].messages) == 1 and rec["now"].messages[0].kind == "immediate"
    assert rec["now"].messages[0].subject.startswith("watcher alert: 30 new items — drone_cooperation (30)")
    for minutes in (0, 1, 30, 60 * 24):  # repeated passes, and the same articles polled again
        add_articles(store, config, [], T0 + timedelta(minutes=minutes))
        await dispatcher.run(T0 + timedelta(minutes=minutes))
    assert len(rec["now"].messages) == 1 and statuses(store) == {"sent": 30}


async def test_digest_waits_for_its_slot_then_sends_one_digest_grouped_by_topic(tmp_path):
    config, store, rec, dispatcher = setup(tmp_path, DIGEST, timezone="Asia/Seoul")
    # 07:00 in Seoul is 22:00 UTC the day before.
    store.set_last_digest_at("daily", datetime(2026, 11, 25, 22, 0, tzinfo=UTC))
    add_articles(
        store,
        config,
        [article(t) for t in ("drone_cooperation", "troop_deployment", "arms_transfers", "drone_cooperation")],
        T0,
    )
    for hours in (0, 6, 12.9):
        report = await dispatcher.run(T0 + timedelta(hours=hours))
        assert report.outcomes == () and rec["daily"].messages == []
    slot = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
    report = await dispatcher.run(slot + timedelta(seconds=20))
    (digest,) = rec["daily"].messages
    assert digest.kind == "digest" and len(digest.items) == 4
    assert [g.topic for g in digest.groups] == ["drone_cooperation", "troop_deployment", "arms_transfers"]
    assert store.last_digest_at("daily") == slot
    await dispatcher.run(slot + timedelta(minutes=1))
    assert len(rec["daily"].messages) == 1 and statuses(store) == {"sent": 4}


async def test_missed_slots_while_down_make_one_digest(tmp_path):
    config, store, rec, dispatcher = setup(tmp_path, DIGEST)
    store.set_last_digest_at("daily", datetime(2026, 11, 22, 7, 0, tzinfo=UTC))
    for day in range(4):  # matches stored over four days while no dispatcher ran
        add_articles(
            store, config, [article("troop_deployment")], datetime(2026, 11, 22, 12, tzinfo=UTC) + timedelta(days=day)
        )
    back = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    await dispatcher.run(back)
    await dispatcher.run(back + timedelta(seconds=30))
    assert [len(m.items) for m in rec["daily"].messages] == [4]
    assert store.last_digest_at("daily") == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


async def test_urgent_topic_skips_the_digest(tmp_path):
    config, store, rec, dispatcher = setup(tmp_path, DIGEST)
    store.set_last_digest_at("daily", datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
    add_articles(store, config, [article("sanctions"), article("drone_cooperation")], T0)
    await dispatcher.run(T0)
    (alert,) = rec["daily"].messages
    assert alert.kind == "immediate" and [i.topic for i in alert.items] == ["sanctions"]
    assert statuses(store) == {"sent": 1, "pending": 1}


@pytest.mark.parametrize("send_empty, expected", [(False, 0), (True, 1)])
async def test_empty_digest_only_when_asked(tmp_path, send_empty, expected):
    _, store, rec, dispatcher = setup(tmp_path, {"daily": {**DIGEST["daily"], "send_empty": send_empty}})
    store.set_last_digest_at("daily", datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    await dispatcher.run(T0)
    await dispatcher.run(T0 + timedelta(minutes=1))
    assert len(rec["daily"].messages) == expected
    assert store.last_digest_at("daily") == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


async def test_failures_back_off_then_deliver_once(tmp_path):
    config, store, rec, dispatcher = setup(tmp_path, IMMEDIATE)
    add_articles(store, config, [article("drone_cooperation"), article("troop_deployment")], T0)
    rec["now"].fail = [retryable(), retryable(retry_after=timedelta(minutes=10))]
    report = await dispatcher.run(T0)
    assert report.retried == 2 and report.outcomes[0].retry_at == T0 + timedelta(minutes=1)
    await dispatcher.run(T0 + timedelta(seconds=30))  # not yet due
    report = await dispatcher.run(T0 + timedelta(minutes=1))  # second failure: the server asked for 10 minutes
    assert report.outcomes[0].retry_at == T0 + timedelta(minutes=11)
    await dispatcher.run(T0 + timedelta(minutes=10))
    assert rec["now"].messages == []
    await dispatcher.run(T0 + timedelta(minutes=11))
    await dispatcher.run(T0 + timedelta(minutes=12))
    assert len(rec["now"].messages) == 1 and statuses(store) == {"sent": 2}
    row = store.list_deliveries(status="sent")[0]
    assert row["attempts"] == 3 and row["last_error"] is None


async def test_a_failed_digest_is_retried_without_waiting_for_the_next_slot(tmp_path):
    config, store, rec, dispatcher = setup(tmp_path, DIGEST)
    store.set_last_digest_at("daily", datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    add_articles(store, config, [article("drone_cooperation") for _ in range(3)], T0 - timedelta(hours=3))
    rec["daily"].fail = [retryable("451 4.3.0 mailbox busy")]
    await dispatcher.run(T0)
    assert rec["daily"].messages == [] and statuses(store) == {"pending": 3}
    await dispatcher.run(T0 + timedelta(minutes=1))
    (digest,) = rec["daily"].messages
    assert digest.kind == "digest" and len(digest.items) == 3


async def test_permanent_failure_is_a_dead_letter_until_retried_by_hand(tmp_path):
    config, store, rec, dispatcher = setup(tmp_path, IMMEDIATE)
    add_articles(store, config, [article("drone_cooperation")], T0)
    rec["now"].fail = [PermanentDeliveryError("550 5.1.1 no such user")]
    report = await dispatcher.run(T0)
    assert report.dead == 1 and statuses(store) == {"dead": 1}
    await dispatcher.run(T0 + timedelta(days=2))
    assert rec["now"].messages == []
    dead = store.list_deliveries(status="dead")
    assert dead[0]["last_error"] == "550 5.1.1 no such user"
    assert store.retry_dead(T0 + timedelta(days=2), ids=[dead[0]["id"]]) == 1
    await dispatcher.run(T0 + timedelta(days=2))
    assert len(rec["now"].messages) == 1 and statuses(store) == {"sent": 1}


async def test_a_bug_in_a_channel_is_logged_and_retried_and_other_channels_go_on(tmp_path, caplog):
    channels = {"broken": {"type": "console", "mode": "immediate"}, "fine": {"type": "console", "mode": "immediate"}}
    config, store, rec, dispatcher = setup(tmp_path, channels)
    add_articles(store, config, [article("drone_cooperation")], T0)
    rec["broken"].fail = [KeyError("oops")]
    with caplog.at_level(logging.ERROR, logger="watcher.alerts"):
        report = await dispatcher.run(T0)
    assert any(r.exc_info and "bug while sending" in r.getMessage() for r in caplog.records)
    assert {(o.channel, o.status) for o in report.outcomes} == {("broken", "retry"), ("fine", "sent")}
    await dispatcher.run(T0 + timedelta(minutes=1))
    assert len(rec["broken"].messages) == len(rec["fine"].messages) == 1


class SplitRecorder(Recorder):
    """A channel whose size limit is 10 items: the dispatcher sends and records each part on its own."""

    def split(self, message):
        from watcher.alerts.digest import split_by_count

        return split_by_count(message, 10)


async def test_one_failed_part_does_not_lose_the_rest_of_the_batch(tmp_path):
    config = make_config(IMMEDIATE)
    store = open_store(tmp_path, config)
    channel = SplitRecorder("now")
    dispatcher = Dispatcher(config, store, {"now": channel})
    add_articles(store, config, [article("drone_cooperation") for _ in range(25)], T0)
    original = channel.send

    async def second_part_fails_once(message):
        if message.part == (2, 3) and not channel.fail_done:
            channel.fail_done = True
            raise retryable()
        await original(message)

    channel.fail_done = False
    channel.send = second_part_fails_once
    report = await dispatcher.run(T0)
    assert [(o.items, o.status) for o in report.outcomes] == [(10, "sent"), (10, "retry"), (5, "sent")]
    await dispatcher.run(T0 + timedelta(minutes=1))
    assert sorted(channel.delivered_ids) == sorted(set(channel.delivered_ids)) and len(channel.delivered_ids) == 25


class SlowRecorder(Recorder):
    def __init__(self, name, gate: asyncio.Event):
        super().__init__(name)
        self.gate = gate
        self.started = asyncio.Event()

    async def send(self, message):
        self.started.set()
        await self.gate.wait()
        await super().send(message)


async def test_overlapping_passes_and_processes_never_send_twice(tmp_path):
    config = make_config(IMMEDIATE)
    store = open_store(tmp_path, config)
    add_articles(store, config, [article("drone_cooperation") for _ in range(5)], T0)
    gate = asyncio.Event()
    slow = SlowRecorder("now", gate)
    daemon = Dispatcher(config, store, {"now": slow})
    first = asyncio.create_task(daemon.run(T0))
    await slow.started.wait()
    overlap = await daemon.run(T0 + timedelta(seconds=20))  # the daemon's next tick while the send hangs
    other = Recorder("now")  # `watcher digest send` in another process, with its own connection
    cli_store = Store.open(tmp_path / "w.db")
    cli_report = await Dispatcher(config, cli_store, {"now": other}).send_digest_now("now", T0 + timedelta(seconds=25))
    gate.set()
    await first
    assert overlap.busy == ("now",) and cli_report.outcomes == () and other.messages == []
    assert len(slow.messages) == 1 and statuses(store) == {"sent": 5}
    cli_store.close()


async def test_drain_waits_for_a_send_in_flight(tmp_path):
    config = make_config(IMMEDIATE)
    store = open_store(tmp_path, config)
    add_articles(store, config, [article("drone_cooperation")], T0)
    gate = asyncio.Event()
    slow = SlowRecorder("now", gate)
    dispatcher = Dispatcher(config, store, {"now": slow})
    sending = asyncio.create_task(dispatcher.run(T0))
    await slow.started.wait()
    assert await dispatcher.drain(0.05) is False  # still sending
    draining = asyncio.create_task(dispatcher.drain(5))
    gate.set()
    assert await draining is True
    await sending
    assert statuses(store) == {"sent": 1}


async def test_matches_stored_before_a_crash_are_delivered_after_restart(tmp_path):
    config = make_config(IMMEDIATE)
    store = open_store(tmp_path, config)
    add_articles(store, config, [article("drone_cooperation") for _ in range(3)], T0)
    store.close()  # the process dies after the match was committed, before any send
    store = Store.open(tmp_path / "w.db")
    rec = Recorder("now")
    await Dispatcher(config, store, {"now": rec}).run(T0 + timedelta(minutes=5))
    assert len(rec.delivered_ids) == 3 and statuses(store) == {"sent": 3}


CRASHING_SENDER = textwrap.dedent("""
    import asyncio, sys
    from datetime import datetime
    sys.path.insert(0, {tests!r})
    from tests.helpers.alerts_support import make_config
    from watcher.alerts.outbox import Dispatcher
    from watcher.alerts.webhook import WebhookChannel
    from watcher.store import Store

    config = make_config({{"hook": {{"type": "webhook", "mode": "immediate", "url": {url!r}}}}})
    store = Store.open({db!r})
    channel = WebhookChannel("hook", url={url!r}, timeout_s=60)
    asyncio.run(Dispatcher(config, store, {{"hook": channel}}).run(datetime.fromisoformat({now!r})))
""")


async def test_sigkill_during_a_send_repeats_only_that_send(tmp_path, site):
    """The one duplicate the promise allows: a send in flight when the process was killed."""
    from tests.helpers.webhook_server import Endpoint

    hook = Endpoint(site, "/hook").then(hang=True)
    channels = {"hook": {"type": "webhook", "mode": "immediate", "url": hook.url}}
    config = make_config(channels)
    store = open_store(tmp_path, config)
    add_articles(store, config, [article("drone_cooperation") for _ in range(4)], T0)
    script = CRASHING_SENDER.format(
        tests=str(Path(__file__).parent.parent), url=hook.url, db=str(tmp_path / "w.db"), now=T0.isoformat()
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, env=env)
    try:
        assert await asyncio.to_thread(hook.wait_for, 1), "the sender never reached the webhook"
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
    from watcher.alerts.webhook import WebhookChannel

    dispatcher = Dispatcher(config, store, {"hook": WebhookChannel("hook", url=hook.url)})
    # The dead sender's claim is taken back at once (its pid is gone), not left to run out its lease.
    report = await dispatcher.run(T0 + timedelta(minutes=1))
    assert report.sent == 4 and statuses(store) == {"sent": 4}
    await dispatcher.run(T0 + LEASE + timedelta(minutes=5))
    payloads = hook.payloads
    assert len(payloads) == 2 and payloads[0]["items"] == payloads[1]["items"]  # the in-flight one, once more


def test_claims_are_taken_back_only_from_processes_that_are_gone():
    import socket

    from watcher.alerts.outbox import CLAIM_OWNER, claim_holder_is_alive

    host = socket.gethostname()
    assert claim_holder_is_alive(CLAIM_OWNER)  # our own claims
    assert not claim_holder_is_alive(f"{host}/{os.getpid()}/another-life")  # our pid, an earlier process
    assert claim_holder_is_alive(f"{host}/1/x")  # a live process (init)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not claim_holder_is_alive(f"{host}/{int(dead.stdout)}/x")  # exited
    assert claim_holder_is_alive("other-host/123/x")  # another machine: its lease decides


async def test_a_live_process_on_this_host_keeps_its_claims_past_the_lease(tmp_path):
    """Another daemon on this file that sent and is still retrying to record it (its database write blocked past
    the lease) keeps its deliveries: taking them would send them twice. A claim of a process that is gone, or of
    another host's (which cannot be judged), is taken as before."""
    import socket

    config, store, _rec, dispatcher = setup(tmp_path, IMMEDIATE)
    add_articles(store, config, [article("drone_cooperation") for _ in range(3)], T0)
    ids = [d.id for d in store.pending_deliveries("now", T0)]
    live = f"{socket.gethostname()}/1/another-daemon"  # pid 1 is always alive
    store.claim_deliveries(ids[:1], T0, T0 + LEASE, live)
    store.claim_deliveries(ids[1:2], T0, T0 + LEASE, "other-host/123/x")
    report = await dispatcher.run(T0 + LEASE + timedelta(minutes=5))  # both leases ran out
    assert report.sent == 2  # the unclaimed one and the other host's; not the live local process's
    assert statuses(store) == {"sent": 2, "pending": 1}
    assert [d.id for d in store.pending_deliveries("now", T0 + timedelta(days=1))] == ids[:1]
