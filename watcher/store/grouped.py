"""Group commit: the writes of polls that brought no article go several to one store call and one transaction.

Most polls of a running daemon bring nothing (304, or no new entry) and write only their feed's row. That write
costs SQLite ~0.1 ms, but handing it to the store's thread and its answer back to the event loop cost ~0.3 ms of
CPU more on the bench machine, and in the all-304 phase of `bench/poll.py` these handoffs were the largest part of
the parent's CPU (docs/architecture.md, "Performance facts"). So such writes wait for each other, at most
`window` after the previous group went: a lone write (the usual case of a daemon polling a few dozen feeds) goes
at once; a burst of 304s goes in groups of as many as arrived meanwhile, up to `most`.

A write that fails as part of a group is written again alone, so each poll gets its own answer (`StoreError`),
as it would have without grouping. Nothing here speaks SQL: the store's `record_polls` writes a group.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence

from ..errors import StoreError
from ..models import FeedUpdate

# A poll's write waits at most this for others to join it: at most 100 handoffs a second however fast polls end,
# and nothing a user could notice (the next check of a feed is minutes away).
WINDOW_S = 0.010
MOST = 100  # updates in one transaction, so other processes never wait long for the write lock

Group = Sequence[tuple[int, FeedUpdate]]


class GroupedPollWrites:
    """`await writes.write(feed_id, update)` returns once the update is committed (or raises StoreError).

    `record` runs a group on the store's thread: `lambda group: store.call(store.record_polls, group)`."""

    def __init__(
        self, record: Callable[[Group], Awaitable[None]], *, window: float = WINDOW_S, most: int = MOST
    ) -> None:
        self._record, self._window, self._most = record, window, most
        self._waiting: list[tuple[int, FeedUpdate, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._last_group_at = -math.inf

    async def write(self, feed_id: int, update: FeedUpdate) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((feed_id, update, done))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            # (A writer of another loop is one that loop left behind when it closed: its waiters are gone too.)
            self._waiting = [w for w in self._waiting if w[2].get_loop() is loop]
            self._last_group_at = -math.inf
            self._writer = loop.create_task(self._write_groups(), name="grouped poll writes")
        await done

    async def _write_groups(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            wait = self._last_group_at + self._window - loop.time()
            if wait > 0 and len(self._waiting) < self._most:
                await asyncio.sleep(wait)  # let the polls ending meanwhile join this group
            group, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
            self._last_group_at = loop.time()
            await self._write_group(group)

    async def _write_group(self, group: list[tuple[int, FeedUpdate, asyncio.Future[None]]]) -> None:
        try:
            await self._record([(feed_id, update) for feed_id, update, _ in group])
        except StoreError as e:
            if len(group) == 1:
                _settle(group[0][2], e)
                return
            for one in group:  # alone, so that one bad write does not fail the others
                await self._write_group([one])
            return
        except asyncio.CancelledError:  # with the loop: the polls waiting for it are being cancelled too
            for _, _, done in group + self._waiting:
                done.cancel()
            self._waiting = []
            raise
        except Exception as e:  # a bug: each waiting poll reports it, the groups after this one still go
            for _, _, done in group:
                _settle(done, e)
            return
        for _, _, done in group:
            _settle(done, None)


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    if done.done():  # its poll was cancelled meanwhile
        return
    if outcome is None:
        done.set_result(None)
    else:
        done.set_exception(outcome)
