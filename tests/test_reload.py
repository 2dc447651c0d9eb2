"""The running daemon follows its config file: `watcher feeds add` (or an edit, or SIGHUP) adds a feed that is polled
without a restart; a broken edit is logged and ignored; removing a feed disables it. Every wait is on a log line."""

from __future__ import annotations

import json
import queue
import re
import signal
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers.daemon_runner import Daemon
from tests.helpers.news import serve_site
from watcher.cli import main
from watcher.config_edit import NewFeed, add_feeds

pytestmark = pytest.mark.slow

CONFIG = """\
# The reload tests' config; `watcher feeds` edits must keep this comment.
[watcher]
database = "watcher.db"
http = "127.0.0.1:0"

[schedule]
interval = "15m"
tick = "1s"

[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "5s"

[extract]
enabled = false   # feed text only: these tests are about the config, not pages

[[feeds]]
name = "world"
url = "{base}/world.rss"

[topics.drone_cooperation]
rule = "drone* AND (produc* OR factory OR plant)"

[channels.console]
type = "console"
mode = "immediate"
"""


class Watched(Daemon):
    """The daemon subprocess, with waits that only look at lines logged after a mark."""

    def mark(self) -> int:
        while True:  # take in what is already there, so the mark is "now"
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                return len(self.log)

    def wait_after(self, mark: int, text: str, timeout: float = 30) -> str:
        return self.wait_for(text, timeout, after=mark)


@pytest.fixture
def daemon(site, tmp_path):
    serve_site(site)
    (tmp_path / "config.toml").write_text(CONFIG.replace("{base}", site.url("")))
    d = Watched(tmp_path)
    d.wait_for("feed world: ok")
    yield d
    if d.proc.poll() is None:
        d.stop()
    assert d.proc.returncode == 0, "".join(d.log)


def feeds_in_db(workdir: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{workdir / 'watcher.db'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT name, enabled FROM feeds"))
    finally:
        db.close()


def test_feeds_add_reaches_the_running_daemon_without_a_restart(daemon, site, tmp_path):
    mark = daemon.mark()
    result = CliRunner().invoke(
        main,
        ["--config", str(tmp_path / "config.toml"), "feeds", "add", site.url("/asia.atom"), "--name", "asia"],
        env={"WATCHER_CONFIG": None, "WATCHER_DB": None},
    )
    assert result.exit_code == 0, result.output
    assert "config reloaded (file changed): 2 feeds (+1, -0)" in daemon.wait_after(mark, "config reloaded")
    daemon.wait_after(mark, "feed asia: ok")
    assert feeds_in_db(tmp_path) == {"world": 1, "asia": 1}
    assert (tmp_path / "config.toml").read_text().startswith("# The reload tests' config")


def test_sighup_reloads(daemon, site, tmp_path):
    mark = daemon.mark()
    add_feeds(tmp_path / "config.toml", [NewFeed("json", site.url("/feed.json"))])
    daemon.proc.send_signal(signal.SIGHUP)
    # The file watch may notice the edit before the signal lands; either way SIGHUP reloads and the feed is polled.
    daemon.wait_after(mark, "config reloaded (SIGHUP)")
    daemon.wait_after(mark, "feed json: ok")
    mark = daemon.mark()
    daemon.proc.send_signal(signal.SIGHUP)  # nothing changed: a reload all the same, with nothing added or removed
    assert "2 feeds (+0, -0)" in daemon.wait_after(mark, "config reloaded (SIGHUP)")


def test_a_broken_edit_is_logged_and_the_daemon_keeps_its_config(daemon, site, tmp_path):
    url = re.search(r"listening on (http://\S+)", daemon.wait_for("ops endpoint listening on")).group(1)
    config = tmp_path / "config.toml"
    good = config.read_text()
    mark = daemon.mark()
    config.write_text(
        good.replace('interval = "15m"', 'interval = "soon"') + '\n[topics.broken]\nrule = "drone AND ("\n'
    )
    daemon.wait_after(mark, "config not reloaded (file changed)")
    daemon.wait_after(mark, 'schedule.interval: expected a duration such as "90s", "15m", "6h" or "2d", found \'soon\'')
    health = json.loads(
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url + "/healthz", timeout=10).read()
    )
    assert health["status"] == "degraded" and "config file not loaded" in health["reasons"][0]

    # Fixed, with a new topic and a new feed: both take effect, and the new topic matches the new feed's items.
    mark = daemon.mark()
    config.write_text(
        good.replace("[channels.console]", '[topics.troops]\nrule = "troop*"\n\n[channels.console]')
        + f'\n[[feeds]]\nname = "asia"\nurl = "{site.url("/asia.atom")}"\n'
    )
    daemon.wait_after(mark, "config reloaded (file changed): 2 feeds (+1, -0), 2 topics")
    daemon.wait_after(mark, "feed asia: ok")
    metrics = (
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url + "/metrics", timeout=10).read().decode()
    )
    assert (
        'watcher_config_reloads_total{result="error"} 1' in metrics
        and 'watcher_config_reloads_total{result="ok"} 1' in metrics
    )


def test_removing_a_feed_disables_it_and_keeps_its_rows(daemon, site, tmp_path):
    add_feeds(tmp_path / "config.toml", [NewFeed("asia", site.url("/asia.atom"))])
    daemon.wait_for("feed asia: ok")
    mark = daemon.mark()
    result = CliRunner().invoke(
        main,
        ["--config", str(tmp_path / "config.toml"), "feeds", "remove", "world"],
        env={"WATCHER_CONFIG": None, "WATCHER_DB": None},
    )
    assert result.exit_code == 0, result.output
    daemon.wait_after(mark, "config reloaded (file changed): 1 feeds (+0, -1)")
    assert feeds_in_db(tmp_path) == {"world": 0, "asia": 1}


def _healthz(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        return json.loads(opener.open(url + "/healthz", timeout=10).read())
    except urllib.error.HTTPError as e:  # 503 carries the verdict too
        return json.loads(e.read())


HOSTILE_ITEM = """<?xml version="1.0"?><rss version="2.0"><channel><title>Hostile</title><link>{base}/</link>
<item><title>Drone factory</title><guid>hostile-1</guid><description>{text}</description></item>
</channel></rss>"""


def test_a_hostile_item_and_a_doubling_term_chain_do_not_freeze_the_daemon(daemon, site, tmp_path):
    """The nested-NEAR item of the hostile run (42 s and 4.3 GB on the event loop before) and a reload with a chain
    of lists that each use the previous one twice (2^22 expansions, a frozen daemon): /healthz answers through both."""
    url = re.search(r"listening on (http://\S+)", daemon.wait_for("ops endpoint listening on")).group(1)
    site.add(
        "/hostile.rss",
        HOSTILE_ITEM.format(base=site.url(""), text="drone factory Russia Korea troops. " * 1200),
        content_type="application/rss+xml",
    )
    chain = "".join(f'a{i} = "(@a{i - 1} x{i}) OR (@a{i - 1} y{i})"\n' for i in range(1, 23))
    config = tmp_path / "config.toml"
    mark = daemon.mark()
    config.write_text(
        config.read_text().replace(
            "[channels.console]",
            '[topics.nested]\nrule = "NEAR(NEAR(NEAR(NEAR(drone factory, 5) Russia, 10) Korea, 10) troops, 10)"\n\n'
            '[topics.chain]\nrule = "@a22"\n\n[channels.console]',
        )
        + f'\n[[feeds]]\nname = "hostile"\nurl = "{site.url("/hostile.rss")}"\n'
        + f'\n[terms]\na0 = "drone OR factory"\n{chain}'
    )
    daemon.wait_after(mark, "config reloaded (file changed): 2 feeds (+1, -0), 3 topics")
    assert _healthz(url)["status"] in ("ok", "degraded")  # answered (degraded: the broken-server feed of others)
    daemon.wait_after(mark, "feed hostile: ok")
    assert _healthz(url)["status"] in ("ok", "degraded")
    db = sqlite3.connect(f"file:{tmp_path / 'watcher.db'}?mode=ro", uri=True)
    try:
        topics = {t for (t,) in db.execute("SELECT topic FROM matches")}
    finally:
        db.close()
    assert "nested" in topics  # matched, within the time limit, off the loop
