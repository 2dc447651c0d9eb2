"""What lives for the whole process, as one async context manager: `async with Runtime(config) as runtime:`.

A poll needs two kinds of things. Some are built from the config and change on a reload: the compiled topics,
the routes from topics to channels, the feed table (pipeline.Pipeline). The others live as long as the process
and must survive a reload untouched, or a reload would forget what the process knows:
  * the one Fetcher (HTTP clients, their connection pools, per-host limits);
  * the worker processes (feed parsing and page extraction);
  * the caps on feeds and pages in flight (memory stays bounded whatever the number of feeds);
  * the table of articles being built (two feeds carrying one new story share one page fetch);
  * the network watch (an outage is "offline", not every feed broken, across a reload too).
The daemon and `watcher poll` both build exactly this; a reload builds a new Pipeline over the same Runtime.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from .config import Config
from .fetch import Fetcher
from .models import Article
from .network import NetworkWatch
from .workers import Workers


def feeds_at_once(config: Config) -> int:
    """Feeds between their fetch and their write at once: twice the fetch concurrency, so a feed's pages can be
    fetched while another feed waits for its answer. The daemon claims no more than this (sharing.py), so claimed
    feeds do not wait here while another worker is idle."""
    return 2 * config.fetch.concurrency


class Runtime:
    def __init__(self, config: Config, *, workers: Workers | None = None) -> None:
        """`workers`: a pool the caller owns and shuts down (tests share one); by default the runtime makes its own."""
        self.fetch_settings = config.fetch
        self.extract_settings = config.extract
        # Always made: the workers parse feeds too, even when pages are not extracted.
        self.workers = workers or Workers(config.extract.workers, config.extract.timeout.total_seconds())
        self._owns_workers = workers is None
        self.fetcher = Fetcher(config.fetch)
        # Pages wait for a free extraction worker here, not in memory: without this cap fetched pages piled up
        # to 1.36 GB in our measurements.
        self.pages_in_flight = asyncio.Semaphore(2 * self.workers.workers)
        # Feeds between their fetch and their write. Without a cap, a tick over 10,000 due feeds fetched bodies far
        # faster than the workers parsed them, and they piled up in memory (2.8 GB measured).
        self.feeds_in_flight = asyncio.Semaphore(feeds_at_once(config))
        # canonical URL -> the task building that article: two feeds that carry the same new story in one pass
        # share one page fetch and one extraction (each still records itself as a source).
        self.articles_in_flight: dict[str, asyncio.Task[Article]] = {}
        self.network = NetworkWatch()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self.fetcher.aclose()
        finally:
            if self._owns_workers:
                self.workers.shutdown()

    def restart_only_changes(self, new: Config) -> list[str]:
        """Settings of a reloaded config that this runtime's parts hold until the process restarts."""
        changed = []
        if self.fetch_settings != new.fetch:
            changed.append("[fetch]")
        old_x, new_x = self.extract_settings, new.extract
        if (old_x.workers, old_x.timeout) != (new_x.workers, new_x.timeout) or (new_x.enabled and not old_x.enabled):
            changed.append("[extract] enabled/workers/timeout")
        return changed
