"""`watcher run`: APScheduler wiring, signals and a clean stop.

The database holds the schedule: every `tick` the daemon asks the store which feeds are due and starts a poll
task for each one that is not already being polled, so a restart after downtime polls every overdue feed at
the first tick, and no feed is ever polled twice at once. Alerts and maintenance are jobs of their own.

APScheduler's defaults would silently drop runs (a 1 s misfire grace time): every job here sets
`misfire_grace_time=None` (run late rather than never), `coalesce=True` (one run for many missed ones) and
`max_instances=1`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .alerts.outbox import Dispatcher
from .config import Config
from .extract import Extractor
from .fetch import Fetcher
from .models import FeedRecord
from .pipeline import Pipeline, poll, utcnow
from .store import Store

log = logging.getLogger("watcher.daemon")

ALERT_EVERY = timedelta(seconds=20)  # immediate alerts go out within a minute of their match
MAINTENANCE_EVERY = timedelta(hours=1)
STOP_GRACE_S = 6.0  # in-flight polls get this long, sends 2 s more: the whole stop stays under 10 s


class Daemon:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.in_flight: dict[int, asyncio.Task] = {}  # feed id -> its poll task
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        config, store = self.config, self.store
        store.sync_feeds(config.feeds, config.schedule.interval, utcnow())
        extractor = Extractor(config.extract.workers, config.extract.timeout.total_seconds()) if config.extract.enabled else None
        async with Fetcher(config.fetch) as fetcher:
            self.pipeline = Pipeline.build(config, store, fetcher, extractor)
            self.dispatcher = Dispatcher(config, store)
            scheduler = self._scheduler()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stopping.set)
            scheduler.start()
            log.info(
                "watcher started: %d feeds, %d topics, %d channels, database %s",
                len(config.feeds), len(config.topics), len(config.channels), store.path,
            )
            try:
                await self.stopping.wait()
            finally:
                log.info("stopping: %d polls in flight", len(self.in_flight))
                scheduler.shutdown(wait=False)
                await self._finish_polls()
                # A send in progress gets a moment to finish; one cut off repeats after its lease expires.
                await self.dispatcher.drain(2.0)
                if extractor:
                    extractor.shutdown()
        log.info("watcher stopped")

    def _scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=self.config.timezone)
        defaults = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        now = utcnow()
        jobs = (
            (self.tick, self.config.schedule.tick, now),
            (self.send_alerts, ALERT_EVERY, now + timedelta(seconds=2)),
            (self.maintenance, MAINTENANCE_EVERY, now + timedelta(seconds=5)),
        )
        for func, every, first in jobs:
            scheduler.add_job(func, IntervalTrigger(seconds=every.total_seconds()), next_run_time=first, **defaults)
        return scheduler

    async def tick(self) -> None:
        """Start a poll for every due feed that is not being polled already."""
        due = [f for f in self.store.due_feeds(utcnow()) if f.id not in self.in_flight]
        for feed in due:
            self.in_flight[feed.id] = asyncio.create_task(self._poll_one(feed), name=f"poll {feed.name}")

    async def _poll_one(self, feed: FeedRecord) -> None:
        try:
            await poll(self.pipeline, [feed])
        except Exception:
            log.exception("bug while polling %s", feed.name)  # the daemon lives on; the feed is retried next tick
        finally:
            self.in_flight.pop(feed.id, None)

    async def send_alerts(self) -> None:
        try:
            await self.dispatcher.run(utcnow())
        except Exception:
            log.exception("bug while sending alerts")

    async def maintenance(self) -> None:
        keep = self.config.extract.keep_unmatched
        try:
            purged = self.store.purge_unmatched(utcnow() - keep)
            if purged:
                log.info("maintenance: dropped %d unmatched articles older than %s", purged, keep)
        except Exception:
            log.exception("bug during maintenance")

    async def _finish_polls(self) -> None:
        tasks = list(self.in_flight.values())
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in pending:
            task.cancel()  # nothing is lost: a feed's update is written in one transaction, or not at all
        if pending:
            await asyncio.wait(pending, timeout=1.0)


def run_daemon(config: Config, store: Store) -> None:
    asyncio.run(Daemon(config, store).run())
