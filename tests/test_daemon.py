"""The daemon as users run it: a subprocess on a config file, polling a local site, stopped by a signal."""

from __future__ import annotations

import signal
import sqlite3

import pytest

from tests.helpers.daemon_runner import CONFIG, Daemon
from tests.helpers.news import serve_site

pytestmark = pytest.mark.slow


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


def test_sigterm_during_start_up_is_a_clean_stop(site, tmp_path):
    serve_site(site)
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    daemon = Daemon(tmp_path)
    try:
        daemon.wait_for("starting: checking database")  # before the workers start and the scheduler runs
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    # The default action of SIGTERM ended the process with -15 and no log line before.
    assert daemon.proc.returncode == 0, "".join(daemon.log)
    daemon.wait_for("watcher stopped", timeout=5)
    assert "Traceback" not in "".join(daemon.log)


def test_a_fatal_signal_is_reported_at_the_next_start(site, tmp_path):
    """SQLite's memory-mapped -shm file made unwritable (the immutable flag) kills the daemon with SIGBUS and no log
    line. A real SIGBUS in a process armed the way the daemon arms itself leaves the report; the next start says it."""
    import subprocess
    import sys

    serve_site(site)
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    db = tmp_path / "watcher.db"
    died = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from watcher.crashlog import arm; arm(sys.argv[1]);"
            " os.kill(os.getpid(), signal.SIGBUS)",
            str(db),
        ],
        capture_output=True,
    )
    assert died.returncode == -signal.SIGBUS
    daemon = Daemon(tmp_path)
    try:
        line = daemon.wait_for("the previous run died of a fatal signal")
        assert "Fatal Python error: Bus error" in line and "-shm" in line
        daemon.wait_for("watcher started")
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0
    assert not (tmp_path / "watcher.db.crash").exists()  # a clean stop leaves nothing to report
    assert (tmp_path / "watcher.db.crash.old").read_text().startswith("Fatal Python error: Bus error")
