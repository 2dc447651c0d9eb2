"""The Runtime owns what lives for the process; a config reload swaps only what the config derives."""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime

from watcher.alerts.outbox import Dispatcher
from watcher.config import load_config
from watcher.daemon import Daemon
from watcher.models import FeedUpdate
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.store import Store

CONFIG = """
[watcher]
database = "watcher.db"
[topics.{topic}]
rule = "drone"
[channels.inbox]
type = "console"
"""


def _network_failure(host: str) -> FeedUpdate:
    now = datetime.now(UTC)
    return FeedUpdate(f"http://{host}/feed.xml", now, now, "error", error="cannot resolve", error_kind="dns")


async def test_a_reload_keeps_the_offline_state_and_the_articles_in_flight(tmp_path, extractor):
    async with _daemon_set_up(tmp_path, extractor) as (daemon, path):
        runtime = daemon.runtime
        for host in ("a.example", "b.example", "c.example"):
            runtime.network.classify(_network_failure(host))
        assert runtime.network.offline
        building = asyncio.get_running_loop().create_future()
        runtime.articles_in_flight["https://example.org/story"] = building  # type: ignore[assignment]

        path.write_text(CONFIG.format(topic="troops"), encoding="utf-8")
        assert await daemon.reload("test")

        assert [t.name for t in daemon.pipeline.topics] == ["troops"]  # the config-derived part is new
        assert daemon.pipeline.runtime is runtime
        assert runtime.network.offline  # an outage is still an outage after the reload
        assert runtime.articles_in_flight == {"https://example.org/story": building}
        # and the next failure while offline is still recorded as offline, not as a broken feed
        update = daemon.pipeline.runtime.network.classify(replace(_network_failure("d.example")))
        assert update.status == "offline"
        building.cancel()
        await asyncio.gather(*daemon._tasks, return_exceptions=True)


async def test_the_runtime_names_the_settings_that_need_a_restart(tmp_path, extractor):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(topic="drones"), encoding="utf-8")
    config = load_config(path)
    async with Runtime(config, workers=extractor) as runtime:
        assert runtime.restart_only_changes(config) == []
        changed = replace(config, fetch=replace(config.fetch, per_host=5))
        assert runtime.restart_only_changes(changed) == ["[fetch]"]


async def test_a_reload_reads_the_store_on_its_thread_never_beside_a_write(tmp_path, extractor):
    # The daemon's connection is one, and its writes run on the store's thread. A reload that read the stored
    # models on the loop's thread ran its statements inside whatever transaction the store's thread had open: a
    # COMMIT landing between sqlite-utils' SAVEPOINT and RELEASE failed the reload ("no such savepoint", seen in
    # test_reload.py's hostile-item test). On the store's thread the calls are serial, so that cannot happen.
    async with _daemon_set_up(tmp_path, extractor) as (daemon, path):
        threads: list[str] = []
        load_models = daemon.store.load_models

        def spied_load_models():
            threads.append(threading.current_thread().name)
            return load_models()

        daemon.store.load_models = spied_load_models  # type: ignore[method-assign]
        path.write_text(CONFIG.format(topic="troops"), encoding="utf-8")
        assert await daemon.reload("test")
        assert [t.name for t in daemon.pipeline.topics] == ["troops"]
        assert len(threads) == 1 and threads[0].startswith("watcher-store"), threads


@asynccontextmanager
async def _daemon_set_up(tmp_path, extractor):
    """A daemon on a config with one topic ("drones"), its runtime, pipeline and dispatcher as `run` sets them."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(topic="drones"), encoding="utf-8")
    config = load_config(path)
    store = Store.open(tmp_path / "watcher.db")
    daemon = Daemon(config, store)
    try:
        async with Runtime(config, workers=extractor) as runtime:
            daemon.runtime = runtime
            daemon.pipeline = Pipeline.build(config, store, runtime)
            daemon.dispatcher = Dispatcher(config, store)
            yield daemon, path
    finally:
        store.close()
