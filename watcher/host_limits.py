"""Requests in flight per host: the per-host limit, or this worker's share of it when several workers share one
database (docs/schema.md, "Several workers": the limit is one budget for the whole deployment).

`async with limits.slot(host):` waits until fewer than `limits.per_host` requests to `host` are in flight;
`await limits.share(workers)` takes this worker's share when `workers` live workers divide the limit. A condition
per host rather than a semaphore, because the limit may change while requests wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


def host_share(limit: int, workers: int) -> int:
    """One worker's requests in flight to a host when `workers` share the deployment's per-host `limit`: an equal
    part, rounded down (the sum never exceeds the limit), but never 0 (a host would be starved)."""
    return max(1, limit // max(1, workers))


class _Host:
    """Requests to one host: how many are in flight (`busy`) and how many wait or run (`users`)."""

    __slots__ = ("busy", "free", "users")

    def __init__(self) -> None:
        self.busy = 0
        self.users = 0
        self.free = asyncio.Condition()


class HostLimits:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # the deployment's per-host limit ([fetch] per_host)
        self.per_host = limit  # this worker's part of it
        self.hosts: dict[str, _Host] = {}  # hosts with requests waiting or in flight; idle hosts are forgotten

    async def share(self, workers: int) -> None:
        """Take this worker's share of the limit; a larger share lets waiting requests go at once, a smaller one
        holds new requests until enough have finished."""
        self.per_host = host_share(self.limit, workers)
        for host in list(self.hosts.values()):
            async with host.free:
                host.free.notify_all()

    @asynccontextmanager
    async def slot(self, name: str) -> AsyncIterator[None]:
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = _Host()
        host.users += 1
        try:
            async with host.free:
                await host.free.wait_for(lambda: host.busy < self.per_host)
                host.busy += 1
            try:
                yield
            finally:
                async with host.free:
                    host.busy -= 1
                    host.free.notify()
        finally:
            host.users -= 1
            if host.users == 0:
                del self.hosts[name]  # a daemon meets thousands of hosts over months
