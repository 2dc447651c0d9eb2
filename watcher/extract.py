"""Article pages -> body text and metadata, with trafilatura, in worker processes with a time limit per page.

Extraction is the CPU ceiling of the whole pipeline (~57 pages/s per core, measured), so it runs in a process
pool sized to the cores and the event loop never waits on it. A page on which extraction runs away is stopped:
asyncio cannot cancel work inside a process, so on a timeout the whole pool is killed and replaced, and any
other page that was in that pool is retried once in the new one.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import re
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import ExtractError
from .models import Extracted, FetchedPage

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
MIN_TEXT_CHARS = 40  # less is a menu or a cookie banner, not an article

_LANG_RE = re.compile(rb"<html[^>]*\slang=[\"']?([A-Za-z]{2,3})", re.IGNORECASE)


def extract_text(content: bytes, url: str) -> Extracted | None:
    """Run trafilatura on one page (in a worker process). None when the page has no main text."""
    import trafilatura  # imported in the worker; the parent never loads it

    # include_comments=False: trafilatura keeps reader comments by default, which we do not want in the body.
    document = trafilatura.bare_extraction(
        content, url=url, include_comments=False, include_tables=False, with_metadata=True, fast=True
    )
    if document is None or len((document.text or "").strip()) < MIN_TEXT_CHARS:
        return None
    lang = document.language or ""
    if not lang and (m := _LANG_RE.search(content[:4096])):
        lang = m.group(1).decode("ascii").lower()
    return Extracted(
        text=document.text.strip(),
        title=(document.title or "").strip(),
        author=(document.author or "").strip(),
        published_at=_parse_date(document.date),
        language=lang,
    )


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if not 1970 <= parsed.year <= 2100:
        return None
    return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)


def _warm_up() -> None:
    _die_with_parent()
    import trafilatura  # noqa: F401  (pay the import once per worker, not on the first page)


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies.

    A daemon killed with SIGKILL cannot shut its pool down, and its workers, re-parented to init, would wait on
    their queue forever (seen in the crash test: one set per kill).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


class Extractor:
    """A pool of extraction workers. `await extractor.extract(page)`; close with `shutdown()`."""

    def __init__(self, workers: int = 0, timeout_s: float = 20.0, function: Callable[[bytes, str], Extracted | None] = extract_text):
        """`function` runs in the workers; it must be importable by name (tests pass a misbehaving one)."""
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self.function = function
        self._pool: ProcessPoolExecutor | None = None
        self._warming: asyncio.Future | None = None
        self._slot_state: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        # spawn: workers are not forked from a process that holds threads and an event loop, and they are the
        # daemon's own children, so _die_with_parent can tie their lives to it (a forkserver outlives a kill -9).
        self._context = multiprocessing.get_context("spawn")

    def _slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()  # a semaphore belongs to one loop; `watcher` runs one loop per command
        if self._slot_state is None or self._slot_state[0] is not loop:
            self._slot_state = (loop, asyncio.Semaphore(self.workers))
        return self._slot_state[1]

    async def _ready_pool(self) -> ProcessPoolExecutor:
        """The pool, started and warm: a new pool's start-up and imports must not count against a page's limit."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_warm_up)
            self._warming = asyncio.get_running_loop().run_in_executor(self._pool, _warm_up)
        pool = self._pool
        try:
            await asyncio.shield(self._warming)
        except BrokenProcessPool:
            pass  # reported by the page's own submission below
        return pool

    async def extract(self, page: FetchedPage) -> Extracted:
        """Extract one page. Raises ExtractError when there is no text, or when the page ran out of time."""
        for attempt in (1, 2):
            # One page per worker at a time, so a page's time limit runs while it is extracted, not while it
            # queues behind a page that is about to be stopped. The pool is taken inside the slot: the one
            # seen before waiting may have been killed meanwhile.
            async with self._slots():
                pool = await self._ready_pool()
                try:
                    future = asyncio.get_running_loop().run_in_executor(pool, self.function, page.content, page.url)
                    result = await asyncio.wait_for(future, self.timeout_s)
                except TimeoutError:
                    self._kill(pool)
                    raise ExtractError(f"extraction of {page.url} took longer than {self.timeout_s:g} s") from None
                except BrokenProcessPool:
                    # Another page's timeout killed the pool under us (or a worker died): one more try.
                    self._kill(pool)
                    if attempt == 2:
                        raise ExtractError(f"extraction worker died on {page.url}") from None
                    continue
                except Exception as e:  # trafilatura's own failures on a hostile page
                    raise ExtractError(f"extraction of {page.url} failed: {type(e).__name__}: {e}") from e
                if result is None:
                    raise ExtractError(f"no article text found on {page.url}")
                return result
        raise AssertionError("unreachable")

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is not pool:
            return  # already replaced
        self._pool = None
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        # Not cancel_futures: pages queued behind the stuck one must fail with BrokenProcessPool (and be
        # retried in the new pool), not be cancelled, which would cancel the poll that awaits them.
        pool.shutdown(wait=False)

    def shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
