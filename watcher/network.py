"""Telling "the network is down" from "these feeds are broken".

When the machine loses its network, every feed fails at once with DNS or connection errors. Counting those
as feed failures would back every feed off for hours and make `status` claim that 40 feeds broke. Instead,
once feeds on several different hosts have failed to resolve or connect with no success in between, watcher
considers itself offline: further such failures are recorded as "offline", keep the feed's normal interval
and do not add to its error count. The first success anywhere ends it. The failures of the same outage seen
before it was recognised (the first hosts of the streak) are handed back, so that the store records them as
"offline" too: one outage shows as one thing in `status`, not as a few errors and then offline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .models import NETWORK_FAILURES, FeedUpdate

log = logging.getLogger("watcher.network")

HOSTS_BEFORE_OFFLINE = 3  # distinct hosts unreachable, with no success between, before we blame the network


@dataclass
class NetworkWatch:
    hosts_before_offline: int = HOSTS_BEFORE_OFFLINE
    unreachable: set[str] = field(default_factory=set)  # hosts that failed since the last success
    # (key, plain next check) of this streak's network failures that were recorded as errors, before the outage
    # was recognised; `key` is the caller's (the pipeline passes the feed's id).
    streak: list[tuple[Any, datetime]] = field(default_factory=list)

    @property
    def offline(self) -> bool:
        return len(self.unreachable) >= self.hosts_before_offline

    def classify(self, update: FeedUpdate, normal_next_check: FeedUpdate | None = None, key: Any = None) -> FeedUpdate:
        """Record one feed's outcome; while offline, turn a network failure into an "offline" update.

        `normal_next_check` carries the next check time the feed would have after a success (its plain
        interval), used instead of the back-off while offline.
        """
        if update.status != "error":
            if self.offline:
                log.info("network is reachable again (%s answered)", _host(update.feed_url))
            self.unreachable.clear()
            self.streak.clear()
            return update
        if update.error_kind not in NETWORK_FAILURES:
            return update
        was_offline = self.offline
        self.unreachable.add(_host(update.feed_url))
        next_check = normal_next_check.next_check_at if normal_next_check else update.next_check_at
        if not self.offline:
            if key is not None:
                self.streak.append((key, next_check))
            return update
        if not was_offline:
            log.warning(
                "network appears to be down: %d hosts unreachable in a row; feeds are not counted as failing until it returns",
                len(self.unreachable),
            )
        # The status says "offline"; the error keeps its own words (what failed), without repeating it.
        return replace(update, status="offline", error_kind="offline", next_check_at=next_check)

    def take_earlier_failures(self) -> list[tuple[Any, datetime]]:
        """Once offline: this outage's failures recorded as errors before it was recognised, each once."""
        if not self.offline:
            return []
        taken, self.streak = self.streak, []
        return taken


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url
