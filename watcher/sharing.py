"""Several workers, one database: the part of the work this `watcher run` takes (docs/schema.md, "Several workers").

Every worker runs the same loop over the same database, and nothing else coordinates them:
  * due feeds are claimed with a lease (`Store.claim_due_feeds`), only as many as the worker can start now, so a
    worker never sits on feeds another could poll; the poll's write ends the lease in its own transaction, and a
    worker that dies leaves leases that lapse (`feed_lease`), after which the others claim the feeds;
  * while a poll runs, each tick renews its lease, so a poll with many pages keeps its feed;
  * the per-host limit is one budget for the deployment: each worker allows itself its share of it, from the
    number of workers that ticked lately (`host_limits.host_share`).
A single worker is the same loop with one worker in it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from .config import Config
from .errors import StoreError
from .fetch import Fetcher
from .models import FeedRecord
from .processes import other_process_running
from .runtime import feeds_at_once
from .store import Store

log = logging.getLogger("watcher.daemon")

# A worker counts as live while its last tick is this many ticks old at most (a tick delayed by a busy database
# must not halve the others' budget back and forth), and never less than LIVE_MIN.
LIVE_TICKS = 2
LIVE_MIN = timedelta(seconds=10)


def feed_lease(config: Config) -> timedelta:
    """How long a claimed feed stays this worker's without a renewal.

    Long enough for the part of a poll that runs between two ticks without any renewal in the worst case: the feed
    request's total deadline ([fetch] timeout, redirects included) plus the parse in a worker process, cut at
    [extract] timeout. Pages and a write that waits on a busy database take longer, but every tick renews the
    leases of the polls in flight, so the lease is also at least two ticks (one renewal may be late). Short enough
    that the feeds of a worker that died are polled by the others within that time, not an interval later."""
    deadlines = config.fetch.timeout + config.extract.timeout
    return max(deadlines, 2 * config.schedule.tick)


def live_since(now: datetime, config: Config) -> datetime:
    """Workers whose last tick is at or after this count as live, for the per-host share."""
    return now - max(LIVE_TICKS * config.schedule.tick, LIVE_MIN)


class Share:
    """This worker's part of a database other workers may share: its row in `workers`, its leases on feeds.

    `in_flight` (feed id -> poll task) and `start` (starts a poll of a claimed feed and enters it there) are the
    daemon's; `stopping` ends the claims."""

    def __init__(
        self,
        store: Store,
        in_flight: Mapping[int, object],
        start: Callable[[FeedRecord], None],
        stopping: asyncio.Event,
    ) -> None:
        self.store = store
        self.host, self.pid = socket.gethostname(), os.getpid()
        # The worker's name in `workers` and on its leases: a restarted worker is another worker (same pid in a
        # container), and its predecessor's leases lapse rather than pass to it.
        self.owner = f"{self.host}:{self.pid}:{int(time.time())}"
        self.polled = 0  # feeds polled since the last tick row was written
        self._in_flight, self._start, self._stopping = in_flight, start, stopping
        self._more_due = False  # the last claim filled the room: more feeds may be waiting
        self._wanted = self._claiming = False

    async def tick(self, now: datetime, config: Config, fetcher: Fetcher | None) -> None:
        """Each tick: this worker's row, the renewal of the leases of its polls in flight, its per-host share."""
        polled, self.polled = self.polled, 0
        try:
            await self.store.call(self.store.record_worker_tick, self.owner, self.host, self.pid, now, polled)
        except StoreError as e:  # only logged: the polls go on
            self.polled += polled
            log.warning("cannot record this worker's tick: %s", e)
        if self._in_flight:
            try:
                until = now + feed_lease(config)
                await self.store.call(self.store.renew_feed_leases, self.owner, list(self._in_flight), until)
            except StoreError as e:  # at worst a lease lapses and another worker polls a feed too
                log.warning("cannot renew the leases of %d polls in flight: %s", len(self._in_flight), e)
        if fetcher is not None:
            await self._share_hosts(now, config, fetcher)

    async def claim(self, config: Config) -> None:
        """Claim as many due feeds as this worker can start now and start them; again while the last claim filled
        the room. The room is the cap on feeds in flight (Runtime.feeds_in_flight), so no claimed feed waits here
        while another worker is idle. A call while a claim runs makes that one go round once more instead."""
        self._wanted = True
        if self._claiming:
            return
        self._claiming = True
        try:
            while self._wanted and not self._stopping.is_set():
                self._wanted = False
                room = feeds_at_once(config) - len(self._in_flight)
                if room <= 0:
                    break
                now = datetime.now(UTC)
                feeds = await self.store.call(self.store.claim_due_feeds, self.owner, now, feed_lease(config), room)
                self._more_due = len(feeds) == room
                for feed in feeds:
                    if feed.id not in self._in_flight:  # else its lease lapsed mid-poll and came back to us
                        self._start(feed)
        except StoreError as e:  # busy or unwritable: the next tick claims again
            log.warning("cannot claim due feeds: %s", e)
        finally:
            self._claiming = False

    async def poll_ended(self, feed_id: int, written: bool, config: Config) -> None:
        """A poll ended: its outcome's transaction ended the lease when `written`; else (the write failed) the feed
        is still due, and is given back now rather than at the end of the lease. Then fill the room again."""
        if not written:
            await self.release([feed_id])
        if self._more_due:
            await self.claim(config)

    async def _share_hosts(self, now: datetime, config: Config, fetcher: Fetcher) -> None:
        try:
            live = await self.store.call(self.store.live_workers, live_since(now, config))
        except StoreError as e:
            log.warning("cannot count the live workers (per-host share unchanged): %s", e)
            return
        before = fetcher.per_host
        await fetcher.share_hosts(live)
        if fetcher.per_host != before:
            log.info(
                "%d live workers share the per-host limit of %d: this one allows itself %d requests per host",
                max(live, 1),
                config.fetch.per_host,
                fetcher.per_host,
            )

    async def take_back_from_the_dead(self) -> None:
        """At start: give back the leases of workers on this host whose process has ended (a restart after a crash,
        or a sibling killed): their feeds are polled at once, as a restart polls every overdue feed, instead of one
        lease later. A worker on another host cannot be judged from here: its leases lapse."""
        try:
            rows = await self.store.call(self.store.workers)
            gone = [
                r["name"]
                for r in rows
                if r["leases"] and r["host"] == self.host and not other_process_running(r["pid"])
            ]
            for name in gone:
                released = await self.store.call(self.store.release_all_feed_leases, name)
                log.info("took back %d feed leases of worker %s, which is gone", released, name)
        except StoreError as e:
            log.warning("leases of gone workers not taken back (they lapse on their own): %s", e)

    async def release(self, feed_ids: list[int] | None = None) -> None:
        """Give leases back so the others need not wait for them to lapse: those on `feed_ids`, or every lease of
        this worker (it stops; polls cut off by the stop)."""
        try:
            if feed_ids is None:
                await self.store.call(self.store.release_all_feed_leases, self.owner)
            elif feed_ids:
                await self.store.call(self.store.release_feed_leases, self.owner, feed_ids)
        except StoreError as e:
            log.warning("leases not given back (they lapse on their own): %s", e)
