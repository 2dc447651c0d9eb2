"""A short memory of names and hosts: DNS answers, names that failed to resolve, hosts that refused connections.

A feed's items often link to one host. When that host's name does not resolve (an offline machine, a dead CDN)
or its port refuses connections, every page of the feed would wait for the same failure in turn: on an offline
box 26-51 s a feed, and a healthy feed polled beside them waited 46.7 s instead of 0.7 s, behind pages that held
the shared slots. So a failure is remembered for a while (`FAILURE_TTL_S`) and the host's other pages fail at
once; lookups of one name in flight at the same moment are shared; a good answer is kept briefly
(`ANSWER_TTL_S`) so that checking a name before taking a shared slot (pipeline.py) costs no second lookup.
The answers kept are the ones the address guard checked; they are checked again on every use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

FAILURE_TTL_S = 120.0
ANSWER_TTL_S = 30.0
MAX_ENTRIES = 10_000  # a daemon meets many hosts over months: forget the oldest beyond this

T = TypeVar("T")


class Remembered(Generic[T]):
    """`await memory.get(key, lookup)`: the lookup's result or exception, shared while in flight, kept a while."""

    def __init__(
        self,
        *,
        answer_ttl_s: float = ANSWER_TTL_S,
        failure_ttl_s: float = FAILURE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.answer_ttl_s = answer_ttl_s
        self.failure_ttl_s = failure_ttl_s
        self.clock = clock
        self._kept: dict[object, tuple[float, T | None, BaseException | None]] = {}
        self._in_flight: dict[object, asyncio.Future[T]] = {}

    def failure(self, key: object) -> tuple[BaseException, float] | None:
        """The failure remembered for `key` and its age in seconds, while it is remembered."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        until, _, error = kept
        if error is None or self.clock() >= until:
            return None
        return error, self.failure_ttl_s - (until - self.clock())

    def remember_failure(self, key: object, error: BaseException) -> None:
        self._keep(key, None, error, self.failure_ttl_s)

    async def get(self, key: object, lookup: Callable[[], Awaitable[T]], keep: Callable[[BaseException], bool]) -> T:
        """The result of `lookup()` for `key`; an exception for which `keep` says yes is remembered and re-raised."""
        kept = self._kept.get(key)
        if kept is not None and self.clock() < kept[0]:
            if kept[2] is not None:
                raise kept[2]
            return kept[1]  # type: ignore[return-value]
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await lookup()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            if keep(e):
                self._keep(key, None, e, self.failure_ttl_s)
            future.set_exception(e)
            future.exception()  # retrieved here: nobody else may be waiting for it
            raise
        else:
            self._keep(key, result, None, self.answer_ttl_s)
            future.set_result(result)
            return result
        finally:
            self._in_flight.pop(key, None)

    def _keep(self, key: object, result: T | None, error: BaseException | None, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._kept) >= MAX_ENTRIES:
            now = self.clock()
            self._kept = {k: v for k, v in self._kept.items() if v[0] > now}
            while len(self._kept) >= MAX_ENTRIES:
                self._kept.pop(next(iter(self._kept)))
        self._kept[key] = (self.clock() + ttl, result, error)
