"""`watcher run`: APScheduler wiring, signals and a clean stop.

The database holds the schedule: every `tick` the daemon claims due feeds from the store (a lease: sharing.py) and
starts a poll task for each, as many as it can start at once, and claims more as polls end while feeds are left
due; so a restart after downtime polls every overdue feed at once, no feed is ever polled twice at once, and
several `watcher run` processes on one database split the feeds between them. Alerts and maintenance are jobs
of their own.

APScheduler's defaults would silently drop runs (a 1 s misfire grace time): every job here sets
`misfire_grace_time=None` (run late rather than never), `coalesce=True` (one run for many missed ones) and
`max_instances=1`.

The config is reloaded without a restart on SIGHUP and when the file's content changes (compared every
CONFIG_WATCH_EVERY: a stat-based watch misses edits within one mtime tick, and hashing a few KB is free, so no
file-watching library is needed). A file that does not load is logged problem by problem and the daemon keeps
its current config. Feeds, topics, terms, channels and schedule intervals take effect at once; the few settings
bound to long-lived objects (database, [fetch], extraction workers, http) are logged as needing a restart.

With `--http` or `[watcher] http`, one listener on this loop serves /healthz and /metrics (ops.py) and the
analyst's page (web/).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .alerts.outbox import Dispatcher
from .config import Config, load_config
from .crashlog import arm, crash_file, disarm, previous_crash
from .errors import ConfigError, ConfigProblem, StoreError, WatcherError
from .learn.retrain import refresh_models
from .metrics import METRICS_CONTENT_TYPE, Metrics, gauges
from .models import FeedRecord
from .ops import (
    STORE_FAILURES_FAILING,
    Health,
    Response,
    assess_health,
    clear_failure_marker,
    health_response,
    write_failure_marker,
)
from .pipeline import Pipeline, poll, utcnow
from .runtime import Runtime
from .sharing import Share
from .store import Store, recovery_advice
from .web import WebContext, WebServer, access_for, build_app

log = logging.getLogger("watcher.daemon")

MAINTENANCE_EVERY = timedelta(hours=1)
CONFIG_WATCH_EVERY = timedelta(seconds=2)  # how soon an edit of the config file (or `watcher feeds add`) is seen
LEARN_EVERY = timedelta(seconds=30)  # how soon labels given elsewhere (the command line, the web) reach the models
STOP_GRACE_S = 6.0  # in-flight polls get this long, sends 2 s more: the whole stop stays under 10 s


class Daemon:
    def __init__(self, config: Config, store: Store, *, http: str | None = None, early_stop: list[int] | None = None):
        self.config = config
        self._early_stop = early_stop if early_stop is not None else []
        self.store = store
        self.http = http or config.http  # `run --http` wins over [watcher] http
        self.in_flight: dict[int, asyncio.Task] = {}  # feed id -> its poll task
        self.stopping = asyncio.Event()
        self.metrics = Metrics()
        self.metrics.seed(config)
        self.last_tick_at: datetime | None = None
        self._last_tick_mono: float | None = None
        self.config_error: str | None = None  # why the file on disk was refused, until a good one loads
        self._config_digest = _digest(config.path)  # the content last loaded or refused
        self._reload_lock = asyncio.Lock()
        self._retired: list[Dispatcher] = []  # dispatchers replaced by a reload: drained at stop
        self._tasks: set[asyncio.Task] = set()  # reloads and ticks started from signals and reloads
        self.store_failures = 0  # polls in a row whose outcome could not be written (ops.STORE_FAILURES_FAILING)
        # This process's row in `workers` and its leases on feeds (docs/schema.md, "Several workers").
        self.share = Share(store, self.in_flight, self._start_poll, self.stopping)
        self.store_error: str | None = None

    async def run(self) -> None:
        config, store = self.config, self.store
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # first: a stop asked during start-up is a clean stop too
            loop.add_signal_handler(sig, self.stopping.set)
        if self._early_stop:
            self.stopping.set()
        log.info("starting: checking database %s", store.name)
        damage = await store.call(store.quick_check)
        if damage:
            raise StoreError(
                f"database {store.path} is damaged (PRAGMA quick_check: {damage}); watcher will not start on it: "
                + recovery_advice(store.path)
            )
        clear_failure_marker(store.path)  # a run of failures recorded by a previous process is over
        await store.call(store.sync_feeds, config.feeds, config.schedule.interval, utcnow())
        await self.share.take_back_from_the_dead()
        if self.stopping.is_set():
            log.info("watcher stopped during start-up")
            return
        async with Runtime(config) as runtime:
            if self.stopping.is_set():  # asked while the workers started: they stop with the runtime
                log.info("watcher stopped during start-up")
                return
            self.runtime = runtime
            self.pipeline = await store.call(Pipeline.build, config, store, runtime)  # as reload() builds it
            self.dispatcher = Dispatcher(config, store)
            scheduler: AsyncIOScheduler | None = None
            ops_server: WebServer | None = None
            try:
                ops_server = await self._start_ops()  # before anything runs: a busy port stops the start
                scheduler = self._scheduler()
                loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload("SIGHUP")))
                scheduler.start()
                log.info(
                    "watcher started: %d feeds, %d topics, %d channels, database %s",
                    len(config.feeds),
                    len(config.topics),
                    len(config.channels),
                    store.name,
                )
                self._report_database()
                for problem in config.missing_secrets(os.environ):
                    log.warning("%s", problem)
                await self.stopping.wait()
            finally:
                log.info("stopping: %d polls in flight", len(self.in_flight))
                if scheduler is not None:
                    scheduler.shutdown(wait=False)
                await self._finish_polls()
                await self.share.release()  # polls cut off by the stop: the other workers may take them at once
                # A send in progress gets a moment to finish; one cut off repeats after its lease expires.
                for dispatcher in (*self._retired, self.dispatcher):
                    await dispatcher.drain(2.0 / (1 + len(self._retired)))
                if ops_server is not None:
                    await ops_server.close()
        log.info("watcher stopped")

    def _report_database(self) -> None:
        """Say at start-up how the database is protected, and warn when it is not as designed (docs/schema.md)."""
        h = self.store.health()
        log.info(
            "database: journal %s, synchronous %s, busy_timeout %d ms, foreign keys %s, schema %d",
            h.journal_mode,
            h.synchronous,
            h.busy_timeout_ms,
            "on" if h.foreign_keys else "off",
            h.schema_version,
        )
        if h.journal_mode.lower() not in ("wal", "postgresql"):
            log.warning(
                "database is not in WAL mode (%s): readers may block the daemon; is it on a network file system?",
                h.journal_mode,
            )

    def _scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=self.config.timezone)
        defaults = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        now = utcnow()
        jobs = (
            (self.tick, self.config.schedule.tick, now),
            (self.send_alerts, self.config.schedule.alerts, now + timedelta(seconds=2)),
            (self.maintenance, MAINTENANCE_EVERY, now + timedelta(seconds=5)),
            (self.watch_config, CONFIG_WATCH_EVERY, now + CONFIG_WATCH_EVERY),
            (self.learn, LEARN_EVERY, now + LEARN_EVERY),
        )
        for func, every, first in jobs:
            job = scheduler.add_job(
                func, IntervalTrigger(seconds=every.total_seconds()), next_run_time=first, **defaults
            )
            if func == self.tick:
                self._tick_job = job  # a reload that changes [schedule] tick reschedules it
        return scheduler

    async def tick(self) -> None:
        """Record this worker's tick, keep the feeds being polled, take its per-host share, claim due feeds."""
        self.last_tick_at, self._last_tick_mono = utcnow(), time.monotonic()
        runtime = getattr(self, "runtime", None)
        await self.share.tick(self.last_tick_at, self.config, runtime.fetcher if runtime else None)
        await self.share.claim(self.config)

    def _start_poll(self, feed: FeedRecord) -> None:
        self.in_flight[feed.id] = asyncio.create_task(self._poll_one(feed), name=f"poll {feed.name}")

    async def _poll_one(self, feed: FeedRecord) -> None:
        written = False  # the outcome's transaction also ended the lease (Store.apply_update)
        try:
            for outcome in await poll(self.pipeline, [feed]):
                self.metrics.record_feed(outcome)
                self.share.polled += 1
                written = outcome.update.error_kind != "store"
                self._count_store_failure(outcome.update.error if outcome.update.error_kind == "store" else None)
        except Exception:
            log.exception("bug while polling %s", feed.name)  # the daemon lives on; the feed is retried next tick
        finally:
            self.in_flight.pop(feed.id, None)
        if not self.stopping.is_set():
            await self.share.poll_ended(feed.id, written, self.config)

    def _count_store_failure(self, error: str | None) -> None:
        """Writes failing in a row make the verdict failing (a damaged table lets the write probe through), here
        and, through the marker file, in `watcher status --check`."""
        if error is None:
            if self.store_failures >= STORE_FAILURES_FAILING:
                clear_failure_marker(self.store.path)
                log.info("database writes succeed again")
            self.store_failures, self.store_error = 0, None
            return
        self.store_failures += 1
        self.store_error = error
        if self.store_failures >= STORE_FAILURES_FAILING:
            write_failure_marker(self.store.path, self.store_failures, error)

    async def send_alerts(self) -> None:
        try:
            report = await self.dispatcher.run(utcnow())
            self.metrics.record_dispatch(report)
            log.debug("alert pass: %d sent, %d to retry, %d dead", report.sent, report.retried, report.dead)
        except Exception:
            log.exception("bug while sending alerts")

    async def maintenance(self) -> None:
        keep = self.config.extract.keep_unmatched
        try:
            purged = await self.store.call(self.store.purge_unmatched, utcnow() - keep)
            if purged:
                log.info("maintenance: dropped %d unmatched articles older than %s", purged, keep)
        except Exception:
            log.exception("bug during maintenance")

    async def learn(self) -> None:
        """Retrain the topics whose labels changed, in a thread on a connection of its own (never blocking polls),
        then swap the new models into the pipeline."""
        pipeline = self.pipeline
        try:
            models = await asyncio.to_thread(
                refresh_models, self.config, self.store.open_another, utcnow, pipeline.models
            )
        except WatcherError as e:
            log.error("topics not retrained: %s", e)
            return
        except Exception:
            log.exception("bug while retraining topics")
            return
        if models is not None and pipeline is self.pipeline:  # a reload in between built its own
            pipeline.models = models

    async def _finish_polls(self) -> None:
        tasks = list(self.in_flight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in pending:
            task.cancel()  # nothing is lost: a feed's update is written in one transaction, or not at all
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    # --- reloading the config ---------------------------------------------------------------------------------

    async def watch_config(self) -> None:
        """Reload when the file's content differs from the content last loaded (or refused)."""
        digest = _digest(self.config.path)
        if digest is not None and digest != self._config_digest:  # None: mid-save by an editor, or gone; wait
            await self.reload("file changed")

    async def reload(self, trigger: str) -> bool:
        """Load the config file again and apply it; on any problem keep running on the current config."""
        async with self._reload_lock:
            path = self.config.path
            self._config_digest = _digest(path)
            try:
                # Compiling the rules is CPU work that a hostile config could make long: off the loop, so polls,
                # /healthz and signals go on meanwhile (the limits in rules/ bound it; the thread keeps it apart).
                new = await asyncio.to_thread(load_config, path)
                # On the store's thread, at start-up too: building reads the stored models, and the one connection
                # must never run a statement inside a write that thread has open (it would end our read's savepoint).
                pipeline = await self.store.call(Pipeline.build, new, self.store, self.runtime)
                dispatcher = Dispatcher(new, self.store)
                await self.store.call(self.store.sync_feeds, new.feeds, new.schedule.interval, utcnow())
            except Exception as e:  # a WatcherError is the file's fault; anything else a bug: neither stops the daemon
                if isinstance(e, ConfigError):
                    problems = e.problems
                else:
                    if not isinstance(e, WatcherError):
                        log.exception("bug while reloading the config")
                    problems = [ConfigProblem("(config)", "a config that applies", f"{type(e).__name__}: {e}")]
                self.config_error = f"{len(problems)} problem(s); see the log"
                self.metrics.inc("watcher_config_reloads_total", result="error")
                log.error(
                    "config not reloaded (%s): %s has %d problem(s); keeping the current config",
                    trigger,
                    path,
                    len(problems),
                )
                for problem in problems:
                    log.error("  %s: %s", path, problem)
                return False
            self._apply(new, pipeline, dispatcher, trigger)
            return True

    def _apply(self, new: Config, pipeline: Pipeline, dispatcher: Dispatcher, trigger: str) -> None:
        old = self.config
        # Polls in flight finish on the old pipeline; both share the runtime (fetcher, workers, caps, the articles
        # being built, the network watch), so a reload neither doubles the pages in memory, nor fetches a story
        # twice, nor forgets that the network is down.
        self.pipeline, self.config, self.config_error = pipeline, new, None
        # A pass of the old dispatcher may still be sending; it finishes, and the stop drains it. Its claims on
        # the outbox keep the new dispatcher from sending the same alerts meanwhile.
        self._retired = [*self._retired, self.dispatcher][-3:]
        self.dispatcher = dispatcher
        self.metrics.seed(new)
        self.metrics.inc("watcher_config_reloads_total", result="ok")
        if new.schedule.tick != old.schedule.tick and getattr(self, "_tick_job", None) is not None:
            self._tick_job.reschedule(IntervalTrigger(seconds=new.schedule.tick.total_seconds()))
        before, after = {f.name for f in old.feeds}, {f.name for f in new.feeds}
        log.info(
            "config reloaded (%s): %d feeds (+%d, -%d), %d topics, %d channels",
            trigger,
            len(new.feeds),
            len(after - before),
            len(before - after),
            len(new.topics),
            len(new.channels),
        )
        for setting in _restart_only_changes(old, new) + self.runtime.restart_only_changes(new):
            log.warning("config: %s changed; that takes effect when watcher restarts", setting)
        for problem in new.missing_secrets(os.environ):
            log.warning("%s", problem)
        self._spawn(self.tick())  # added feeds are due now: poll them without waiting for the next tick

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the ops endpoint ------------------------------------------------------------------------------------

    async def _start_ops(self) -> WebServer | None:
        if not self.http:
            return None
        try:
            server = WebServer(self.http, self._web_app())
            url = await server.start()
        except (ValueError, OSError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ConfigError(
                self.config.path,
                [ConfigProblem("watcher.http", "an address watcher can listen on", f"{self.http!r} ({reason})")],
            ) from e
        access = server.app.access
        pages = (
            "the analyst's page, "
            if access.pages_enabled
            else "(the page is off: not loopback and no [watcher] web_password_env password) "
        )
        log.info("ops endpoint listening on %s (%s/healthz, /metrics)", url, pages)
        return server

    def _web_app(self) -> object:
        host = self.http.rsplit(":", 1)[0].strip("[]")
        context = WebContext(
            store=self.store,
            config=lambda: self.config,
            runtime=self.runtime,
            access=access_for(host, self.config.web_password_env, self.config.public_url, os.environ),
            healthz=self._healthz,
            metrics=self._metrics,
            config_written=self._config_written,
            clock=utcnow,
        )
        return build_app(context)

    async def _config_written(self, config: Config) -> None:
        """The page wrote config.toml: reload now rather than at the file watch's next look."""
        await self.reload("the page")

    async def health(self) -> Health:
        # In a thread, on connections of its own (the probe's and the store's reader): the verdict must come even
        # while the store's thread waits for a lock another process holds.
        tick_age = time.monotonic() - self._last_tick_mono if self._last_tick_mono is not None else None
        return await asyncio.to_thread(
            assess_health,
            self.store.reader(),
            self.config,
            utcnow(),  # the write probe runs in the thread too (assess_health)
            tick_age_s=tick_age,
            config_error=self.config_error,
            store_failures=self.store_failures,
            store_error=self.store_error,
        )

    async def _healthz(self) -> Response:
        return health_response(await self.health())

    async def _metrics(self) -> Response:
        samples = await asyncio.to_thread(
            gauges,
            self.store.reader(),
            in_flight=len(self.in_flight),
            last_tick_at=self.last_tick_at,
            configured={f.name for f in self.config.feeds},
        )
        return Response(200, METRICS_CONTENT_TYPE, self.metrics.render(samples).encode())


def _digest(path: str) -> bytes | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).digest()
    except OSError:
        return None


def _restart_only_changes(old: Config, new: Config) -> list[str]:
    """Settings the daemon itself holds until a restart (the runtime names its own: [fetch], [extract])."""
    changed = []
    if old.database != new.database:
        changed.append("[watcher] database")
    if old.http != new.http:
        changed.append("[watcher] http")
    if old.log_level != new.log_level:
        changed.append("[watcher] log_level")
    return changed


def catch_early_stop() -> list[int]:
    """Called first thing by `watcher run`: a SIGTERM or Ctrl-C during start-up (loading and compiling the config,
    opening the database, starting the workers) asks for a clean stop instead of killing the process with the
    default action. The daemon's loop takes the signals over once it runs, and honours one that came before."""
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: received.append(signum))
    return received


def run_daemon(config: Config, store: Store, *, http: str | None = None, early_stop: list[int] | None = None) -> None:
    crash = previous_crash(store.path)
    if crash:
        log.error(
            "the previous run died of a fatal signal (%s), without a clean stop; with SQLite this is most often the "
            "database's memory-mapped -shm file becoming unwritable (an immutable flag, a full or remounted "
            "/dev/shm): see docs/reliability.md; the report is in %s.old",
            crash,
            crash_file(store.path),
        )
    arm(store.path)
    try:
        asyncio.run(Daemon(config, store, http=http, early_stop=early_stop).run())
    finally:
        disarm(store.path)
