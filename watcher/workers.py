"""The worker processes for the CPU-bound stages: article extraction, feed parsing and matching.

Both would hold the event loop's core (trafilatura ~20-40 ms a page, feedparser ~20-70 ms a changed feed), so
they run in a process pool sized to the cores, and the loop only awaits them. Each call has a time limit: asyncio
cannot cancel work inside a process, so on a timeout the whole pool is killed and replaced, and any other call
that was in that pool is retried once in the new one. Workers ask the kernel to kill them when the daemon dies,
so a `kill -9` leaves no orphans behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import functools
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .body import decoded_page
from .errors import ExtractError, FetchError, MatchError, ParseError, WatcherError
from .extract import article_body, extract_text
from .models import BodySource, Extracted, FetchedFeed, FetchedPage, Match, ParsedFeed, ReadArticle
from .parse import parse_feed
from .rules import RuleSet, match_with

# (page bytes, URL, whether the page's title/author/date are wanted) -> the page's text and metadata, or None
Extraction = Callable[[bytes, str, bool], Extracted | None]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _warm_up() -> None:
    _ignore_the_terminals_interrupt()
    _die_with_parent()
    import trafilatura  # noqa: F401  (pay the imports once per worker, not on the first page)

    import watcher.parse
    import watcher.rules  # noqa: F401


def _ignore_the_terminals_interrupt() -> None:
    """Leave Ctrl-C to the parent.

    Ctrl-C sends SIGINT to the terminal's whole process group, workers included; each would die with
    `Process SpawnProcess-1: Traceback ... KeyboardInterrupt` on stderr while the parent is still stopping them
    cleanly (it shuts the pool down, and _die_with_parent covers a parent that dies instead).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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


def read_article(
    extract: Extraction,
    matcher: Callable[[RuleSet, str, str], tuple[Match, ...]],
    rules: RuleSet | None,
    fetched: FetchedPage,
    entry_title: str,
    feed_body: str,
    feed_source: BodySource,
    page_metadata: bool = True,
) -> ReadArticle:
    """Decode a page, extract it, choose the body and match it, in one worker call (in the worker process).

    One call instead of two saves a round trip per article and sends the page's text across the process boundary
    once, as the body; the page itself crosses still compressed. The call's time limit covers all of it: a
    runaway match is stopped like a runaway page. `page_metadata`: whether the page's title, author and date are
    wanted (extract.py: they cost more than a third of extraction, and the entry's own come first).
    """
    failure = ""
    try:
        page = extract(decoded_page(fetched), fetched.url, page_metadata)
    except FetchError as e:  # a corrupt or oversized body: the fetcher's verdict, reached here
        page, failure = None, str(e)
    except Exception as e:  # trafilatura's own failures on a hostile page: the feed's text is used
        page, failure = None, f"{type(e).__name__}: {e}"
    else:
        if page is None:
            failure = "no article text found"
    body, source = article_body(page, entry_title, feed_body, feed_source)
    title = entry_title or (page.title if page else "")
    matches = matcher(rules, title, body) if rules is not None else ()
    return ReadArticle(
        title=title,
        body=body,
        body_source=source,
        matches=matches,
        page=dataclasses.replace(page, text="") if page is not None else None,
        page_failure=failure,
    )


def match_each(
    matcher: Callable[[RuleSet, str, str], tuple[Match, ...]], rules: RuleSet, texts: Sequence[tuple[str, str]]
) -> tuple[tuple[Match, ...], ...]:
    """`matcher` on each (title, body), in order (in the worker process)."""
    return tuple(matcher(rules, title, body) for title, body in texts)


def _extract_page(extract: Extraction, page: FetchedPage) -> Extracted | None:
    """`extract` on the decoded page (in the worker process); a body that fails to decode raises ExtractError."""
    try:
        content = decoded_page(page)
    except FetchError as e:
        raise ExtractError(str(e)) from None
    return extract(content, page.url, True)  # with the page's title, author and date: a caller without an entry


class _TimedOut(Exception):
    pass


class _Died(Exception):
    pass


class Workers:
    """`await workers.read_article(page, rules, ...)` (extract and match in one call), `await workers.parse(fetched,
    max_entries)`, `await workers.extract(page)`, `await workers.match(rules, title, body)`; close with `shutdown()`."""

    def __init__(
        self,
        workers: int = 0,
        timeout_s: float = 20.0,
        function: Extraction = extract_text,
        matcher: Callable[[RuleSet, str, str], tuple[Match, ...]] = match_with,
    ):
        """`function` is the extraction and `matcher` the matching run in the workers; they must be importable by
        name (tests pass misbehaving ones)."""
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self.function = function
        self.matcher = matcher
        self._pool: ProcessPoolExecutor | None = None
        self._warming: asyncio.Future | None = None
        self._slot_state: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        # spawn: workers are not forked from a process that holds threads and an event loop, and they are the
        # daemon's own children, so _die_with_parent can tie their lives to it (a forkserver outlives a kill -9).
        self._context = multiprocessing.get_context("spawn")

    async def extract(self, page: FetchedPage) -> Extracted:
        """Extract one page. Raises ExtractError when there is no text, or when the page ran out of time."""
        try:
            result = await self._run(_extract_page, self.function, page)
        except _TimedOut:
            raise ExtractError(f"extraction of {page.url} took longer than {self.timeout_s:g} s") from None
        except _Died:
            raise ExtractError(f"extraction worker died on {page.url}") from None
        except WatcherError:
            raise
        except Exception as e:  # trafilatura's own failures on a hostile page
            raise ExtractError(f"extraction of {page.url} failed: {type(e).__name__}: {e}") from e
        if result is None:
            raise ExtractError(f"no article text found on {page.url}")
        return result

    async def read_article(
        self,
        page: FetchedPage,
        rules: RuleSet | None,
        entry_title: str,
        feed_body: str,
        feed_source: BodySource,
        page_metadata: bool = True,
    ) -> ReadArticle:
        """Extract and match an article in one worker call (`read_article` above); `rules` None: no topics.
        Raises ExtractError when the call ran out of time or its worker died: the caller falls back to the feed's
        text and `match`, so a runaway page or match costs the page, not the article."""
        try:
            return await self._run(
                read_article,
                self.function,
                self.matcher,
                rules,
                page,
                entry_title,
                feed_body,
                feed_source,
                page_metadata,
            )
        except _TimedOut:
            raise ExtractError(f"reading {page.url} took longer than {self.timeout_s:g} s") from None
        except _Died:
            raise ExtractError(f"the worker died reading {page.url}") from None

    async def parse(self, fetched: FetchedFeed, max_entries: int, max_bytes: int | None = None) -> ParsedFeed:
        """Parse a feed in a worker, so that parsing uses the other cores and a runaway feed is stopped too.
        `max_bytes`: the config's `max_feed_mb` (the fetcher's cap), so a limit above the parser's default holds."""
        limit = {"max_bytes": max_bytes} if max_bytes else {}
        try:
            return await self._run(parse_feed, fetched, max_entries=max_entries, **limit)
        except _TimedOut:
            raise ParseError(f"parsing took longer than {self.timeout_s:g} s") from None
        except _Died:
            raise ParseError("the parsing worker died on this feed") from None

    async def match(self, rules: RuleSet, title: str, body: str) -> tuple[Match, ...]:
        """Match an article in a worker: feed text is an attacker's input to the matcher too, and a rule or a text
        we did not foresee must cost a time limit, not the event loop (and with it /healthz and every feed)."""
        try:
            return await self._run(self.matcher, rules, title, body)
        except _TimedOut:
            raise MatchError(f"matching took longer than {self.timeout_s:g} s") from None
        except _Died:
            raise MatchError("the matching worker died on this article") from None

    async def match_each(self, rules: RuleSet, texts: Sequence[tuple[str, str]]) -> tuple[tuple[Match, ...], ...]:
        """`match` for several (title, body) texts in one worker call, under one time limit: a feed's articles
        that have no page to read. A call to the pool costs the event loop's process more than matching a feed
        text costs the worker."""
        try:
            return await self._run(match_each, self.matcher, rules, tuple(texts))
        except _TimedOut:
            raise MatchError(f"matching {len(texts)} articles took longer than {self.timeout_s:g} s") from None
        except _Died:
            raise MatchError("the matching worker died on these articles") from None

    def _slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()  # a semaphore belongs to one loop; `watcher` runs one loop per command
        if self._slot_state is None or self._slot_state[0] is not loop:
            self._slot_state = (loop, asyncio.Semaphore(self.workers))
        return self._slot_state[1]

    async def _ready_pool(self) -> ProcessPoolExecutor:
        """The pool, started and warm: a new pool's start-up and imports must not count against a call's limit."""
        if self._pool is None:
            pool = ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_warm_up)
            # The warm-up is created before the pool is kept: if submitting it fails, nothing half-made remains.
            self._warming = asyncio.get_running_loop().run_in_executor(pool, _warm_up)
            self._pool = pool
        pool = self._pool
        try:
            if self._warming is not None:
                await asyncio.shield(self._warming)
        except BrokenProcessPool:
            pass  # reported by the call's own submission below
        return pool

    async def _run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(function, *args, **kwargs)
        for attempt in (1, 2):
            # One call per worker at a time, so a call's time limit runs while it works, not while it queues behind
            # a call that is about to be stopped. The pool is taken inside the slot: the one seen before waiting
            # may have been killed meanwhile.
            async with self._slots():
                pool = await self._ready_pool()
                try:
                    future = asyncio.get_running_loop().run_in_executor(pool, call)
                    return await asyncio.wait_for(future, self.timeout_s)
                except TimeoutError:
                    self._kill(pool)
                    raise _TimedOut from None
                except BrokenProcessPool:
                    # Another call's timeout killed the pool under us (or a worker died): one more try.
                    self._kill(pool)
                    if attempt == 2:
                        raise _Died from None
        raise AssertionError("unreachable")

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is not pool:
            return  # already replaced
        self._pool = None
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        # Not cancel_futures: calls queued behind the stuck one must fail with BrokenProcessPool (and be retried in
        # the new pool), not be cancelled, which would cancel the poll that awaits them.
        pool.shutdown(wait=False)

    def shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
