"""The daemon as users run it: a subprocess on a config file, polling a local site, stopped by a signal."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.helpers.daemon_runner import CONFIG, Daemon
from tests.helpers.localsite import hang
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


def test_the_daemon_runs_on_postgresql_when_the_database_is_a_url(site, tmp_path, postgres_cluster):
    from watcher.store import open_store

    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    url = postgres_cluster.migrated_database()
    config = CONFIG.replace("{base}", site.url("")).replace('database = "watcher.db"', f'database = "{url}"')
    (tmp_path / "config.toml").write_text(config)
    daemon = Daemon(tmp_path)
    try:
        daemon.wait_for("watcher started")
        daemon.wait_for("feed world: ok")
        daemon.wait_for("feed broken-server: error")
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0, "".join(daemon.log)
    assert not (tmp_path / "watcher.db").exists()
    store = open_store(url)
    try:
        titles = [r[0] for r in store.db.execute("SELECT title FROM articles WHERE matched = 1").fetchall()]
        assert titles == ["North Korea and Russia to co-produce attack drones at a new plant"]
        assert dict(store.db.execute("SELECT name, error_count FROM feeds").fetchall()) == {
            "world": 0,
            "broken-server": 1,
        }
        assert store.search("drones")[0]["title"] == titles[0]
    finally:
        store.close()


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
    assert not list(tmp_path.glob("watcher.db.crash*[0-9]"))  # a clean stop leaves nothing to report
    assert (tmp_path / "watcher.db.crash.old").read_text().startswith("Fatal Python error: Bus error")


def _interrupt_like_a_terminal(proc) -> None:
    """Ctrl-C: SIGINT to the whole foreground process group, the worker processes included."""
    os.killpg(proc.pid, signal.SIGINT)


def test_ctrl_c_stops_the_daemon_without_tracebacks_from_the_workers(site, tmp_path):
    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    daemon = Daemon(tmp_path, own_group=True)
    try:
        daemon.wait_for("feed world: ok")  # its pages were extracted: the worker processes are running
        _interrupt_like_a_terminal(daemon.proc)
        daemon.proc.wait(timeout=15)
        daemon.wait_for("watcher stopped", timeout=5)
    finally:
        if daemon.proc.poll() is None:
            os.killpg(daemon.proc.pid, signal.SIGKILL)
    output = daemon.all_output()
    assert daemon.proc.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


def test_ctrl_c_during_poll_prints_no_worker_tracebacks(site, tmp_path):
    serve_site(site)
    site.add("/slow.xml", handler=hang)  # keeps the poll running after the first feed's pages were extracted
    config = CONFIG.replace("{base}", site.url("")).replace("/error.xml", "/slow.xml")
    (tmp_path / "config.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", "config.toml", "poll"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        seen = []
        for line in proc.stderr:  # the log goes to stderr; this loop ends when the line comes (or the process ends)
            seen.append(line)
            if "feed world: ok" in line:
                break
        assert any("feed world: ok" in line for line in seen), "".join(seen)
        _interrupt_like_a_terminal(proc)
        _, rest = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = "".join(seen) + rest
    assert "SpawnProcess" not in stderr and "Traceback" not in stderr, stderr


def test_on_a_terminal_poll_draws_its_bar_without_log_lines_inside_it(site, tmp_path):
    import pty

    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", "config.toml", "poll"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    terminal = b""
    while True:  # until the process closes its end of the terminal
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    stdout, _ = proc.communicate(timeout=60)
    os.close(leader)
    text = terminal.decode()
    assert "polling" in text and "100%" in text
    # What stays on screen: each carriage return starts the line again; "\r\x1b[K" erases it first.
    for line in re.split(r"[\r\n]", text.replace("\r\x1b[K", "\n")):
        assert not ("polling" in line and (" INFO " in line or "WARNING" in line)), text  # none inside the bar
    assert " INFO " not in text  # the per-feed lines are in the table instead
    assert "broken-server" in stdout.decode() and "world" in stdout.decode()


def test_start_up_warns_about_every_secret_the_environment_lacks(site, tmp_path):
    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    config = CONFIG.replace("{base}", site.url("")) + (
        '\n[channels.team_slack]\ntype = "slack"\nwebhook_url_env = "WATCHER_TEST_UNSET_SLACK_URL"\n'
    )
    (tmp_path / "config.toml").write_text(config)
    daemon = Daemon(tmp_path)  # the runner drops every WATCHER_* variable from the environment
    try:
        line = daemon.wait_for("WATCHER_TEST_UNSET_SLACK_URL")
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert "WARNING" in line
    assert "channels.team_slack.webhook_url_env: environment variable WATCHER_TEST_UNSET_SLACK_URL is not set" in line
