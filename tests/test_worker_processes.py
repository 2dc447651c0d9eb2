"""Several `watcher run` processes sharing one config file and one database (docs/schema.md, "Several workers").

Real processes, a real local site and a real webhook endpoint: each feed polled exactly once per interval, each
alert delivered once, a worker killed mid-poll taken over after its leases lapse, one digest slot sent once.
The database is a parameter (the `worker_database` fixture): the `[watcher] database` value every worker is given,
a SQLite file and a PostgreSQL database.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from tests.helpers.daemon_runner import Daemon
from tests.helpers.localsite import Handler, LocalSite
from tests.helpers.webhook_server import Endpoint
from watcher.store import from_db_time, open_store

pytestmark = pytest.mark.slow

CONFIG = """
[watcher]
database = "{database}"
alert_on_first_poll = true
log_level = "{log_level}"
[schedule]
interval = "{interval}"
jitter = 0
tick = "1s"
alerts = "1s"
[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "{fetch_timeout}"
per_host = 6
[extract]
enabled = false
workers = 1
timeout = "1s"
[stories]
window = "0s"
[topics.drones]
rule = "drone"
[channels.hook]
type = "webhook"
mode = "{mode}"
url = "{hook}"
{channel_extra}
"""


class CountingFeeds:
    """`count` feeds on the site; each answer is timed per feed. Poll n of a feed lists items 1..n of it, so
    every poll brings one new item that matches (a title with "drone"), each item its own story."""

    def __init__(self, site: LocalSite, count: int, hold: threading.Event | None = None) -> None:
        self.site, self.count = site, count
        self.lock = threading.Lock()
        self.polls: dict[int, list[float]] = {i: [] for i in range(count)}
        # While `hold` is given and `holding`, requests hang until `hold` is set: the worker that made them is
        # killed meanwhile, mid-poll.
        self.hold, self.holding = hold, hold is not None
        for i in range(count):
            site.add(f"/f/{i}.xml", handler=self._handler(i))

    def _handler(self, i: int) -> Callable[[Handler], None]:
        def handle(handler: Handler) -> None:
            with self.lock:
                self.polls[i].append(time.time())
                n, holding = len(self.polls[i]), self.holding
            if holding and self.hold is not None:
                self.hold.wait(30)
            items = "".join(
                f"<item><title>Drone item {k} of feed {i}</title><link>{self.item_url(i, k)}</link>"
                f"<guid>feed{i}-item{k}</guid><description>drone news</description></item>"
                for k in range(1, n + 1)
            )
            body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>Feed {i}</title>{items}</channel></rss>"
            handler.send_bytes(200, body.encode(), {"content-type": "application/rss+xml"})

        return handle

    def item_url(self, i: int, k: int) -> str:
        return f"http://127.0.0.1:{self.site.port}/a/{i}/{k}"

    def feeds_toml(self) -> str:
        return "".join(f'[[feeds]]\nname = "f{i}"\nurl = "{self.site.url(f"/f/{i}.xml")}"\n' for i in range(self.count))

    def polled_at_least(self, n: int, *, since: float = 0.0) -> bool:
        with self.lock:
            return all(len([t for t in p if t >= since]) >= n for p in self.polls.values())


def write_config(workdir: Path, database: str, feeds: CountingFeeds, hook: Endpoint, **settings: str) -> None:
    values = {
        "database": database,
        "log_level": "info",
        "interval": "1h",
        "fetch_timeout": "5s",
        "mode": "immediate",
        "channel_extra": "",
    }
    values.update(settings)
    (workdir / "config.toml").write_text(CONFIG.format(hook=hook.url, **values) + feeds.feeds_toml())


def delivered_urls(hook: Endpoint) -> list[str]:
    return [item["url"] for payload in hook.payloads for item in payload["items"]]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, workers: list[Daemon]) -> None:
    """Poll `condition` under a deadline (the site and the endpoint are written by other threads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n" + "\n".join(_log_so_far(w) for w in workers))
        time.sleep(0.05)  # polling a condition under a deadline, not waiting a fixed time


def _log_so_far(worker: Daemon) -> str:
    while not worker.lines.empty():
        worker.log.append(worker.lines.get())
    return f"--- worker {worker.proc.pid}:\n" + "".join(worker.log)[-3000:]


def stop_all(workers: list[Daemon]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        w.proc.wait(timeout=20)


def test_three_workers_poll_each_feed_once_per_interval_and_deliver_each_alert_once(site, tmp_path, worker_database):
    interval = 12
    feeds = CountingFeeds(site, 300)
    hook = Endpoint(site, "/hook")
    write_config(tmp_path, worker_database, feeds, hook, interval=f"{interval}s")
    workers = [Daemon(tmp_path) for _ in range(3)]
    try:
        for w in workers:
            w.wait_for("watcher started", timeout=60)
        # Two intervals: every feed polled twice, each poll bringing one new matching item.
        wait_until(lambda: feeds.polled_at_least(2), 4 * interval, "every feed polled twice", workers)
        wait_until(lambda: len(delivered_urls(hook)) >= 600, 30, "600 alerts delivered", workers)
        with closing(open_store(worker_database)) as store:
            shares = {w["pid"]: w["feeds_polled"] for w in store.workers()}
    finally:
        stop_all(workers)
    for i, times in feeds.polls.items():
        gaps = [b - a for a, b in pairwise(times)]
        # Never twice within an interval, and the second poll did come. Two workers polling one feed would do so
        # at once; a scheduled poll comes an interval after the previous poll *started*, and a request may wait for
        # a slot first, so the gap between requests may be a little short of the interval: half tells them apart.
        assert len(times) >= 2 and min(gaps) >= interval / 2, (i, gaps)
    urls = delivered_urls(hook)
    expected = {feeds.item_url(i, k) for i in range(300) for k in (1, 2)}
    assert len(urls) == len(set(urls)) and expected <= set(urls)  # no alert twice, none lost
    assert len(shares) == 3 and all(n > 0 for n in shares.values()), shares  # the three shared the work
    for w in workers:
        assert "Traceback" not in w.all_output()


def test_a_worker_killed_mid_poll_leaves_its_feeds_to_the_others_after_its_leases_lapse(
    site, tmp_path, worker_database
):
    hold = threading.Event()
    feeds = CountingFeeds(site, 12, hold=hold)
    hook = Endpoint(site, "/hook")
    # Leases: 8 s of fetch deadline + 1 s of parse (sharing.feed_lease). The deadline must outlast the start of
    # the two other workers while the first worker's requests hang.
    write_config(tmp_path, worker_database, feeds, hook, fetch_timeout="8s")
    killed = Daemon(tmp_path)
    others: list[Daemon] = []
    try:
        killed.wait_for("watcher started", timeout=60)
        wait_until(lambda: sum(map(len, feeds.polls.values())) > 0, 30, "the first worker's requests", [killed])
        others = [Daemon(tmp_path) for _ in range(2)]
        for w in others:
            w.wait_for("watcher started", timeout=60)
        with closing(open_store(worker_database)) as store:
            wait_until(lambda: len(store.workers()) == 3, 10, "the other workers' first ticks", others)
            (name,) = [w["name"] for w in store.workers() if w["pid"] == killed.proc.pid]
            killed.proc.send_signal(signal.SIGKILL)
            killed.proc.wait(timeout=10)
            killed_at = time.time()
            feeds.holding = False  # the requests of the dead worker stay unanswered; the others' are answered
            held = store._query("SELECT id, lease_until FROM feeds WHERE lease_owner = ?", [name])
        # It held every feed (the room of one worker is 20), and its requests hung: it died mid-poll.
        assert len(held) == 12 and sum(map(len, feeds.polls.values())) > 0
        wait_until(lambda: feeds.polled_at_least(1, since=killed_at), 30, "every feed polled by the others", others)
        wanted = sum(len(times) for times in feeds.polls.values())  # poll n of a feed brings its item n
        wait_until(lambda: len(delivered_urls(hook)) >= wanted, 30, "the alerts delivered", others)
    finally:
        hold.set()
        stop_all([killed, *others])
    lapsed = max(from_db_time(h["lease_until"]) for h in held)
    assert isinstance(lapsed, datetime)
    for times in feeds.polls.values():
        after = [t for t in times if t >= killed_at]
        assert len(after) == 1 and after[0] >= lapsed.timestamp()  # taken over once, after the lease, not before
    # Each alert once: the killed worker wrote nothing of its polls; poll n of a feed lists its items 1..n.
    expected = sorted(feeds.item_url(i, k) for i, times in feeds.polls.items() for k in range(1, len(times) + 1))
    assert sorted(delivered_urls(hook)) == expected
    with closing(open_store(worker_database)) as store:
        assert store._query("SELECT count(*) AS n FROM feeds WHERE lease_owner IS NOT NULL") == [{"n": 0}]


def test_two_workers_starting_together_send_one_digest_slot_once(site, tmp_path, worker_database):
    feeds = CountingFeeds(site, 4)
    hook = Endpoint(site, "/hook")
    # A slot a minute ago (a channel that never sent counts the last day): both workers find it due at start.
    slot = time.gmtime(time.time() - 60)
    extra = f'schedule = "daily at {slot.tm_hour:02d}:{slot.tm_min:02d}"\nsend_empty = true'
    write_config(tmp_path, worker_database, feeds, hook, mode="digest", log_level="debug", channel_extra=extra)
    workers = [Daemon(tmp_path) for _ in range(2)]
    try:
        for w in workers:
            w.wait_for("watcher started", timeout=60)
        assert hook.wait_for(1, timeout=30)
        for w in workers:  # two passes of each worker after the digest went: neither sends it again
            mark = len(w.log)
            w.wait_for("alert pass:", timeout=30, after=mark)
            w.wait_for("alert pass:", timeout=30, after=len(w.log))
    finally:
        stop_all(workers)
    (payload,) = hook.payloads  # one digest, whichever worker got there first
    assert payload["kind"] == "digest", json.dumps(payload)[:500]
