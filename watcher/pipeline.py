"""The recipe for one feed, stage by stage: fetch, parse, keep new entries, fetch and extract pages, match.

`update_feed` is the only place that knows the order of the stages; it reads from the store (which entries and
URLs are known) but never writes: it returns a FeedUpdate, and `poll` hands that to `Store.apply_update`, one
transaction per feed. A feed's failure is data (an "error" FeedUpdate with its back-off), never an exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .config import Config
from .errors import ExtractError, FetchError, MatchError, ParseError, StoreError, WatcherError
from .extract import article_body
from .learn import TopicModel, apply_models
from .learn.retrain import models_in_use
from .models import (
    Article,
    BodySource,
    Entry,
    FailureKind,
    FeedRecord,
    FeedUpdate,
    Match,
    NotModified,
    PageOutcome,
    ReadArticle,
)
from .rules import CompiledTopic, RuleSet, compile_topics
from .runtime import Runtime
from .schedules import next_check_at
from .store import Store
from .text import redact_url

log = logging.getLogger("watcher.poll")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Pipeline:
    """What a poll needs: the config-derived part (topics, routes, feed URLs), rebuilt on a reload, over the
    process-lifetime parts of the Runtime (fetcher, workers, caps, articles in flight, network watch)."""

    config: Config
    store: Store
    runtime: Runtime
    topics: tuple[CompiledTopic, ...]
    rules: RuleSet  # the same topics as written: what the worker processes compile and match with
    routes: dict[str, tuple[str, ...]]
    # feed name -> the config's URL, built once: the daemon calls poll() once per feed, and a table built per call
    # and held by every feed waiting its turn grew with the square of the feed count (2 GB at 10,000 feeds).
    feed_urls: dict[str, str]
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)
    # Topics that learn from labels (learn/): their models, swapped whole when retrained; empty: rules alone.
    models: dict[str, TopicModel] = field(default_factory=dict)
    possible_routes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Config, store: Store, runtime: Runtime) -> Pipeline:
        store.configure_stories(config.stories.window)  # the same-story window (docs/stories.md)
        return cls(
            config=config,
            store=store,
            runtime=runtime,
            # Compiled when the config was loaded; a config made without compiling (tests, tools) compiles here.
            topics=config.compiled_topics or compile_topics(config.topics, config.terms),
            rules=RuleSet.of(config.topics, config.terms),
            routes=config.routes(),
            feed_urls={f.name: f.url for f in config.feeds},
            models=models_in_use(config, store),
            possible_routes=config.possible_routes(),
        )


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """One feed's poll, as logged and summarised: the update written and what it queued."""

    feed: FeedRecord
    update: FeedUpdate
    queued: int


async def poll(
    pipeline: Pipeline, feeds: Sequence[FeedRecord], on_done: Callable[[FeedOutcome], None] | None = None
) -> list[FeedOutcome]:
    """Poll feeds concurrently (the fetcher enforces the global and per-host limits) and write each outcome."""

    async def one(feed: FeedRecord) -> FeedOutcome:
        async with pipeline.runtime.feeds_in_flight:
            # The store keeps URLs without credentials; poll the config's own URL.
            return await write_one(replace(feed, url=pipeline.feed_urls.get(feed.name, feed.url)))

    recounted: set[int] = set()  # feeds first logged as failing, then found to be part of an outage

    async def write_one(feed: FeedRecord) -> FeedOutcome:
        network = pipeline.runtime.network
        update = await update_feed(pipeline, feed)
        if update.status == "error":
            plain = replace(update, next_check_at=_next_check(pipeline, feed, update.checked_at))
            update = network.classify(update, plain, key=feed.id)
        else:
            update = network.classify(update)
        try:
            queued = await pipeline.store.write_poll(feed.id, update, pipeline.routes, pipeline.possible_routes)
            earlier = network.take_earlier_failures()
            if earlier:
                await pipeline.store.call(pipeline.store.record_offline, earlier)
                recounted.update(feed_id for feed_id, _ in earlier)
                log.info("network: %d earlier failures of this outage recorded as offline too", len(earlier))
        except StoreError as e:
            # Nothing of this poll was written (one transaction), so the feed is still due: it is simply
            # polled again at the next tick, and succeeds once the disk has room again.
            log.error("feed %s: fetched but not saved: %s; it will be polled again", feed.name, e)
            update, queued = replace(update, status="error", error=f"not saved: {e}", error_kind="store"), 0
        outcome = FeedOutcome(feed, update, queued)
        _log_outcome(outcome)
        if on_done:
            on_done(outcome)
        return outcome

    outcomes = list(await asyncio.gather(*(one(f) for f in feeds)))
    return [
        replace(o, update=replace(o.update, status="offline", error_kind="offline"))
        if o.feed.id in recounted and o.update.status == "error"
        else o
        for o in outcomes
    ]


async def update_feed(pipeline: Pipeline, feed: FeedRecord) -> FeedUpdate:
    started, now = time.monotonic(), pipeline.clock()
    try:
        update = await _update_feed(pipeline, feed, now)
    except WatcherError as e:
        update = _failure(pipeline, feed, now, e)
    except Exception as e:  # a bug: keep the traceback, keep the other feeds going
        log.exception("bug while updating feed %s", feed.name)
        update = _failure(pipeline, feed, now, e)
    return _with_duration(update, time.monotonic() - started)


async def _update_feed(pipeline: Pipeline, feed: FeedRecord, now: datetime) -> FeedUpdate:
    config = pipeline.config
    fetched = await pipeline.runtime.fetcher.fetch_feed(feed.state)
    if isinstance(fetched, NotModified):
        return FeedUpdate(
            feed_url=feed.url,
            checked_at=now,
            next_check_at=_next_check(pipeline, feed, now, hint=fetched.retry_after),
            status="not-modified",
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            new_url=fetched.permanent_redirect,
        )
    # feedparser is CPU work (~20-70 ms a changed feed): in a worker process, so it uses the other cores and
    # other feeds keep flowing.
    parsed = await pipeline.runtime.workers.parse(
        fetched, config.extract.max_entries_per_feed, max_bytes=config.fetch.max_feed_bytes
    )

    entries = _unique_by_id(parsed.entries)
    seen, stored = await pipeline.store.call(
        pipeline.store.known_entries, feed.id, [(e.entry_id, _article_url(e)) for e in entries]
    )
    new_entries = [e for e in entries if e.entry_id not in seen]

    # An article already stored under the same canonical URL (from another feed, or a moved item of this one)
    # is not fetched again: this feed is recorded as one more source.
    urls = {_article_url(e): e for e in new_entries}
    also_seen = tuple((url, entry) for url, entry in urls.items() if url in stored)
    to_fetch = [entry for url, entry in urls.items() if url not in stored]

    keep_unmatched = config.extract.keep_unmatched.total_seconds() > 0
    matched = await _match_without_pages(pipeline, feed, to_fetch)
    articles = await asyncio.gather(*(_shared_article(pipeline, feed, e, matched.get(e.entry_id)) for e in to_fetch))
    kept = tuple(a for a in articles if a.matches or a.model_calls or keep_unmatched)
    return FeedUpdate(
        feed_url=feed.url,
        checked_at=now,
        next_check_at=_next_check(pipeline, feed, now, hint=fetched.retry_after),
        status="ok",
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        title=parsed.title or None,
        new_url=fetched.permanent_redirect,
        seen_entry_ids=tuple(e.entry_id for e in new_entries),
        articles=kept,
        also_seen_at=also_seen,
        alert=config.alert_on_first_poll or not feed.first_poll,
        entries_in_feed=len(entries),
        warning=parsed.warning,
    )


async def _shared_article(
    pipeline: Pipeline, feed: FeedRecord, entry: Entry, feed_matches: tuple[Match, ...] | None = None
) -> Article:
    url = _article_url(entry)
    in_flight = pipeline.runtime.articles_in_flight
    task = in_flight.get(url)
    if task is None:
        task = asyncio.ensure_future(_article(pipeline, feed, entry, feed_matches))
        in_flight[url] = task
        task.add_done_callback(lambda _: in_flight.pop(url, None))
    article = await asyncio.shield(task)
    return article if article.entry is entry else replace(article, entry=entry)


async def _article(
    pipeline: Pipeline, feed: FeedRecord, entry: Entry, feed_matches: tuple[Match, ...] | None = None
) -> Article:
    """Build an article from an entry: the page's extracted text when we can get it, else the feed's own text.
    `feed_matches`: the feed text's, when already found (_match_without_pages)."""
    feed_body, feed_source = _feed_text(entry)
    read, outcome = None, None
    if _reads_page(pipeline, feed, entry):
        read, outcome = await _page(pipeline, entry, feed_body, feed_source)
    if read is None:  # no page, or a page that ran out of time: the feed's text, matched on its own
        body, source = _body_without_page(entry)
        if feed_matches is None:
            feed_matches = await _match(pipeline, entry, entry.title, body)
        read = ReadArticle(entry.title, body, source, feed_matches, None)
    title, body, matches, page = read.title, read.body, read.matches, read.page
    model_calls: tuple = ()
    if pipeline.models:
        # Reading the article's features is linear in its length (matching, the part a hostile rule or text can
        # make costly, ran in the worker under its time limit), and on a thread: the loop is never held.
        matches, model_calls = await asyncio.to_thread(
            apply_models, pipeline.topics, pipeline.models, (title, body), matches
        )
    return Article(
        url=_article_url(entry),
        title=title,
        body=body,
        body_source=read.body_source,
        entry=entry,
        author=entry.author or (page.author if page else ""),
        published_at=entry.published_at or entry.updated_at or (page.published_at if page else None),
        language=page.language if page else "",
        matches=matches,
        model_calls=model_calls,
        page_outcome=outcome,
    )


def _reads_page(pipeline: Pipeline, feed: FeedRecord, entry: Entry) -> bool:
    return bool(pipeline.config.extract.enabled and feed.extract and entry.link)


async def _match_without_pages(
    pipeline: Pipeline, feed: FeedRecord, entries: Sequence[Entry]
) -> dict[str, tuple[Match, ...]]:
    """The matches of the new articles that will have no page, by entry id, found in one worker call for the
    feed: a call to the pool per article cost the event loop's process more than the matching cost the worker.
    When that call fails (a runaway text, a dead worker), none are given and each is matched on its own, under
    its own limit, so one bad text costs only its article."""
    pageless = [e for e in entries if not _reads_page(pipeline, feed, e)]
    if not pipeline.topics or len(pageless) < 2:
        return {}
    texts = [(e.title, _body_without_page(e)[0]) for e in pageless]
    try:
        found = await pipeline.runtime.workers.match_each(pipeline.rules, texts)
    except MatchError as e:
        log.debug("feed %s: %s; matching its articles one by one", feed.name, e)
        return {}
    return {entry.entry_id: matches for entry, matches in zip(pageless, found, strict=True)}


async def _match(pipeline: Pipeline, entry: Entry, title: str, body: str) -> tuple[Match, ...]:
    if not pipeline.topics:
        return ()
    try:
        return await pipeline.runtime.workers.match(pipeline.rules, title, body)
    except MatchError as e:
        # Kept, unmatched: a text no rule can finish on in time is more likely an attack than news.
        log.warning("article %s: %s; kept without matches", redact_url(entry.link or entry.entry_id), e)
        return ()


_STAGE_FAILURES: dict[type[WatcherError], FailureKind] = {
    ParseError: "parse",
    ExtractError: "extract",
    StoreError: "store",
}


async def _page(
    pipeline: Pipeline, entry: Entry, feed_body: str, feed_source: BodySource
) -> tuple[ReadArticle | None, PageOutcome]:
    """The article read from its page in one worker call (extracted, body chosen, matched), and the page's outcome:
    ok, blocked, consent, paywall or failed. None when the page could not be fetched or its call ran out of time."""
    runtime, link = pipeline.runtime, entry.link or ""
    rules = pipeline.rules if pipeline.topics else None
    try:
        # Resolved before a page slot is taken: a name that does not resolve (or resolves slowly) must not hold a
        # slot other feeds' pages wait for; a host that failed a moment ago fails at once (unreachable.py).
        await runtime.fetcher.check_reachable(link)
        async with runtime.pages_in_flight:
            page = await runtime.fetcher.fetch_page(link)
            read = await runtime.workers.read_article(
                page, rules, entry.title, feed_body, feed_source, page_metadata=_lacks_metadata(entry)
            )
    except FetchError as e:
        log.debug("article %s: %s; using the feed's text", redact_url(link), e)
        return None, "blocked" if e.kind == "challenge" else "failed"
    except ExtractError as e:
        log.debug("article %s: %s; using the feed's text", redact_url(link), e)
        return None, "failed"
    if read.page is None:
        log.debug("article %s: %s; using the feed's text", redact_url(link), read.page_failure)
        return read, "failed"
    if read.page.wall:
        log.info(
            "article %s: %s page (%s); using the feed's text", redact_url(link), read.page.wall, read.page.wall_sign
        )
        return read, read.page.wall
    return read, "ok"


def _lacks_metadata(entry: Entry) -> bool:
    """Whether the page must say what the entry does not: its title, author or date (see _article). An entry with
    all three spares the worker trafilatura's search for them, more than a third of a page's extraction."""
    return not (entry.title and entry.author and (entry.published_at or entry.updated_at))


def _body_without_page(entry: Entry) -> tuple[str, BodySource]:
    """The article's body from the feed alone: what is matched when there is no page (one place, so that the
    feed's matches found in advance are those of the body the article gets)."""
    return article_body(None, entry.title, *_feed_text(entry))


def _feed_text(entry: Entry) -> tuple[str, BodySource]:
    if entry.content.strip():
        return entry.content, "feed-content"
    if entry.summary.strip():
        return entry.summary, "feed-summary"
    return "", "none"


def _article_url(entry: Entry) -> str:
    """The article's identity: its canonical URL, or for an entry without a usable link, a name made from its id."""
    if entry.url:
        return entry.url
    digest = hashlib.sha256(f"{entry.feed_url}\n{entry.entry_id}".encode()).hexdigest()[:32]
    return f"urn:watcher:{digest}"


def _unique_by_id(entries: Sequence[Entry]) -> list[Entry]:
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.entry_id not in seen:
            seen.add(entry.entry_id)
            unique.append(entry)
    return unique


def _next_check(pipeline: Pipeline, feed: FeedRecord, now: datetime, *, errors: int = 0, hint=None) -> datetime:
    s = pipeline.config.schedule
    return next_check_at(
        now,
        feed.interval,
        errors=errors,
        server_hint=hint,
        max_backoff=s.max_backoff,
        jitter=s.jitter,
        rng=pipeline.rng,
    )


def _failure(pipeline: Pipeline, feed: FeedRecord, now: datetime, error: Exception) -> FeedUpdate:
    kind: FailureKind
    hint = None
    if isinstance(error, FetchError):
        message, kind, hint = error.message, error.kind, error.retry_after
    elif isinstance(error, WatcherError):
        # A read of the store that failed (damaged, unreadable) is "store": the daemon counts those for health.
        # A failure kind is a stable word, never a class name.
        message, kind = str(error), _STAGE_FAILURES.get(type(error), "error")
    else:
        message, kind = f"internal error: {type(error).__name__}: {error}", "bug"
    return FeedUpdate(
        feed_url=feed.url,
        checked_at=now,
        next_check_at=_next_check(pipeline, feed, now, errors=feed.error_count + 1, hint=hint),
        status="error",
        error=message[:500],
        error_kind=kind,
    )


def _with_duration(update: FeedUpdate, seconds: float) -> FeedUpdate:
    return replace(update, duration_s=seconds)


def _log_outcome(o: FeedOutcome) -> None:
    u = o.update
    matched = sum(1 for a in u.articles if a.matches)
    extra = {
        "feed": o.feed.name,
        "status": u.status,
        "new_entries": len(u.seen_entry_ids),
        "matches": matched,
        "queued": o.queued,
        "duration_s": round(u.duration_s, 3),
    }
    if u.status == "offline":
        extra["error"] = u.error
        log.info(
            "feed %s: offline (the network is down): %s; next try %s",
            o.feed.name,
            u.error,
            u.next_check_at.strftime("%H:%M:%S"),
            extra=extra,
        )
    elif u.status == "error":
        extra["error"] = u.error
        log.warning(
            "feed %s: error (%s) %s; next try %s",
            o.feed.name,
            u.error_kind,
            u.error,
            u.next_check_at.strftime("%H:%M:%S"),
            extra=extra,
        )
    else:
        log.info(
            "feed %s: %s, %d new, %d matched, %.2f s",
            o.feed.name,
            u.status,
            len(u.seen_entry_ids),
            matched,
            u.duration_s,
            extra=extra,
        )
