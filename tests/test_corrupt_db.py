"""A damaged database file: refused at start with the recovery command, failing in the health verdict when the damage
appears at run time, and never a traceback from `watcher status`. The damage is real: bytes of one table's page in
a real file are overwritten, as the hostile run did."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from tests.helpers.news import make_config, serve_site
from watcher.cli import main
from watcher.daemon import Daemon
from watcher.ops import STORE_FAILURES_FAILING, failure_marker
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.store import Store


def damage_table(path: Path, table: str) -> None:
    """Overwrite 64 bytes of `table`'s first page (its b-tree header and cell pointers) in the closed file."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    db.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * 64)


def cli(tmp_path: Path, config_path: Path, *args: str):
    return CliRunner().invoke(
        main,
        ["--config", str(config_path), "--db", str(tmp_path / "w.db"), *args],
        env={"WATCHER_CONFIG": None, "WATCHER_DB": None},
    )


def write_config(tmp_path: Path, site) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[fetch]\nallow_networks = ["127.0.0.0/8"]\n[[feeds]]\nname = "world"\nurl = "{site.url("/world.rss")}"\n'
        '[topics.drones]\nrule = "drone*"\n'
    )
    return path


def test_a_damaged_file_is_refused_at_start_with_the_recovery_command(site, tmp_path):
    serve_site(site)
    config_path = write_config(tmp_path, site)
    assert cli(tmp_path, config_path, "poll").exit_code == 0
    damage_table(tmp_path / "w.db", "feeds")
    started = cli(tmp_path, config_path, "run")
    assert started.exit_code == 2 and "Traceback" not in started.output
    assert "is damaged (PRAGMA quick_check" in started.output and "will not start on it" in started.output
    assert f"sqlite3 {tmp_path / 'w.db'} .recover | sqlite3 {tmp_path / 'w.db'}.recovered" in started.output
    # `watcher status` says what is wrong instead of a traceback; `status --check` (the Docker check) is failing.
    status = cli(tmp_path, config_path, "status")
    assert status.exit_code == 2 and "malformed" in status.output and ".recover" in status.output
    assert status.exception is None or isinstance(status.exception, SystemExit)
    check = cli(tmp_path, config_path, "status", "--check")
    assert check.exit_code == 1 and check.output.startswith("failing") and "database unreadable" in check.output


async def test_damage_at_run_time_makes_the_verdict_failing_after_a_few_failed_writes(site, tmp_path):
    serve_site(site)
    config = make_config(site, feeds={"world": "/world.rss"}, extract={"enabled": False})
    path = tmp_path / "w.db"
    store = Store.open(path)
    store.sync_feeds(config.feeds, config.schedule.interval, datetime.now(UTC))
    (feed,) = store.due_feeds(datetime.now(UTC))
    store.close()
    # A table the health reads do not touch, as in the hostile run (its /healthz said ok): only writes see it.
    damage_table(path, "seen_entries")
    store = Store.open(path)
    daemon = Daemon(config, store)
    async with Runtime(config) as runtime:
        daemon.runtime, daemon.pipeline = runtime, Pipeline.build(config, store, runtime)
        for _ in range(STORE_FAILURES_FAILING - 1):
            await daemon._poll_one(feed)
        assert not any("database" in r for r in (await daemon.health()).reasons)  # not yet: N in a row
        await daemon._poll_one(feed)
        health = await daemon.health()
    assert health.status == "failing", health
    assert any("database writes failing: 3 in a row" in r and "malformed" in r for r in health.reasons)
    assert Path(failure_marker(str(path))).exists()
    store.close()
    # `watcher status --check` (the Docker health check, another process) gives the same verdict from the marker.
    config_path = write_config(tmp_path, site)
    check = cli(tmp_path, config_path, "status", "--check")
    assert check.exit_code == 1 and "database writes failing: 3 in a row" in check.output


def test_a_read_only_database_is_not_called_a_full_disk(tmp_path):
    import pytest

    from watcher.errors import StoreError

    store = Store.open(tmp_path / "w.db")
    store.db.execute(
        "PRAGMA query_only = 1"
    )  # SQLITE_READONLY, as a read-only file or mount gives (root ignores modes)
    with pytest.raises(StoreError) as caught:
        store.set_last_digest_at("mail", datetime.now(UTC))
    assert "read-only" in str(caught.value) and "disk is full" not in str(caught.value)
    store.close()
