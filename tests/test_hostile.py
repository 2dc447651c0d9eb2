"""Every hostile case of docs/reliability.md, polled beside a healthy feed: a safe outcome, nothing wrong stored,
the other feed updated. Then all of them at once against the daemon, which must stay alive."""

from __future__ import annotations

import time
import tracemalloc

import pytest

import tests.helpers.faultsite as faultsite
from tests.helpers.daemon_runner import Daemon
from tests.helpers.news import make_config, poll_all, serve_site


def _cases():
    # Names and paths do not depend on the port: build them once against a throwaway site for the ids.
    from tests.helpers.localsite import LocalSite

    s = LocalSite()
    try:
        return faultsite.install(s)
    finally:
        s._server.server_close()


ALL = _cases()


@pytest.mark.slow  # every case waits out a real fault (drips, hangs, deadlines): the matrix takes ~20 s
@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
async def test_hostile_feed_is_handled_safely_and_the_other_feed_goes_on(case, site, sqlite_store, extractor):
    store = sqlite_store  # a test of the fetcher and the parser: the store's own tests run on both backends
    serve_site(site)
    faultsite.install(site)
    config = make_config(
        site,
        feeds={"world": "/world.rss", "hostile": case.path},
        fetch={"timeout": "3s", "read_timeout": "2s", "max_feed_mb": 2, "max_page_mb": 2},
    )
    tracemalloc.start()
    started = time.monotonic()
    try:
        outcomes = await poll_all(config, store, extractor)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started

    hostile = outcomes["hostile"].update
    assert hostile.status == case.status, faultsite.dump_outcomes(outcomes)
    if case.kind:
        assert hostile.error_kind == case.kind, faultsite.dump_outcomes(outcomes)
    assert outcomes["world"].update.status == "ok"  # the healthy feed is untouched by its neighbour
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] >= 2
    # Bounds generous enough for a loaded machine; the unguarded cases take minutes or gigabytes.
    assert elapsed < 30
    assert peak < 200 * 2**20, f"peak traced memory {peak / 2**20:.0f} MB"
    if case.check:
        case.check(store, site)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_the_daemon_survives_every_hostile_feed_at_once(site, tmp_path):
    serve_site(site)
    cases = faultsite.install(site)
    feeds = "\n".join(f'[[feeds]]\nname = "{c.name}"\nurl = "{site.url(c.path)}"\n' for c in cases)
    (tmp_path / "config.toml").write_text(f"""
[schedule]
tick = "1s"
[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "3s"
read_timeout = "2s"
max_feed_mb = 2
[extract]
workers = 1
[[feeds]]
name = "world"
url = "{site.url("/world.rss")}"
{feeds}
[topics.drone_cooperation]
rule = "drone* AND (produc* OR factory OR plant)"
[channels.console]
type = "console"
mode = "immediate"
""")
    daemon = Daemon(tmp_path)
    try:
        daemon.wait_for("feed world: ok")
        for case in cases:
            daemon.wait_for(f"feed {case.name}: {case.status}")
        assert daemon.proc.poll() is None  # alive after all of them
        assert daemon.stop() < 10
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0
    assert "Traceback" not in "".join(daemon.log), "".join(daemon.log)
