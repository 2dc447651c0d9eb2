"""The daemon as users run it: a subprocess on a config file, polling a local site, stopped by a signal."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import queue
import time
from pathlib import Path

import pytest

from test_pipeline import serve_site

pytestmark = pytest.mark.slow

CONFIG = """
[watcher]
database = "watcher.db"
[schedule]
interval = "15m"
tick = "1s"
[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "5s"
[extract]
workers = 1
[[feeds]]
name = "world"
url = "{base}/world.rss"
[[feeds]]
name = "broken-server"
url = "{base}/error.xml"
[topics.drone_cooperation]
rule = "drone* AND (produc* OR factory OR plant)"
[channels.console]
type = "console"
mode = "immediate"
"""


class Daemon:
    """`watcher run` in a subprocess, its log lines readable with a deadline instead of sleeps."""

    def __init__(self, workdir: Path, *args: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(workdir / "config.toml"), *args, "run"],
            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60, *, after: int = 0) -> str:
        """The first log line containing `text` (from line `after` on), logged before or within `timeout` s from now."""
        for line in self.log[after:]:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.log.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not logged within {timeout} s; log:\n" + "".join(self.log))

    def stop(self, sig=signal.SIGTERM) -> float:
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=15)
        return time.monotonic() - started


def test_daemon_polls_logs_each_feed_and_stops_cleanly_on_sigterm(site, tmp_path):
    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    daemon = Daemon(tmp_path)
    try:
        daemon.wait_for("watcher started")
        daemon.wait_for("feed world: ok")
        daemon.wait_for("feed broken-server: error")
        seconds = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0, "".join(daemon.log)
    assert seconds < 10
    daemon.wait_for("watcher stopped", timeout=5)

    db = sqlite3.connect(tmp_path / "watcher.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    titles = [r[0] for r in db.execute("SELECT title FROM articles WHERE matched = 1")]
    assert titles == ["North Korea and Russia to co-produce attack drones at a new plant"]
    errors = dict(db.execute("SELECT name, error_count FROM feeds"))
    assert errors == {"world": 0, "broken-server": 1}


def test_json_log_lines_carry_the_feed_outcome(site, tmp_path):
    import json

    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    daemon = Daemon(tmp_path, "--log-format", "json")
    try:
        line = daemon.wait_for('"feed": "world"')
        daemon.stop(signal.SIGINT)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    record = json.loads(line)
    assert record["status"] == "ok" and record["new_entries"] == 3 and record["matches"] == 1
    assert daemon.proc.returncode == 0


def test_the_daemon_reports_its_database_settings_and_sets_scheduler_policies(site, tmp_path):
    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    daemon = Daemon(tmp_path)
    try:
        line = daemon.wait_for("database: journal")
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert "journal wal, synchronous NORMAL, busy_timeout 15000 ms, foreign keys on" in line


async def test_every_job_runs_late_rather_than_never(tmp_path):
    # APScheduler's defaults (1 s misfire grace) silently drop a run when the loop was busy or the machine
    # slept; every job must say misfire_grace_time=None, coalesce=True, max_instances=1.
    from watcher.config import config_from_dict
    from watcher.daemon import Daemon as WatcherDaemon
    from watcher.store import Store

    config = config_from_dict({"topics": {"t": {"rule": "drone"}}})
    store = Store.open(tmp_path / "w.db")
    scheduler = WatcherDaemon(config, store)._scheduler()
    jobs = scheduler.get_jobs()
    assert len(jobs) >= 3
    for job in jobs:
        assert (job.misfire_grace_time, job.coalesce, job.max_instances) == (None, True, 1), job.name
    store.close()
