"""The values that cross stage boundaries: small, frozen, and free of library objects.

Names follow the boundary they cross: fetch.py turns a FeedState into a FetchedFeed (or NotModified),
parse.py turns a FetchedFeed into a ParsedFeed of Entry values, extract.py turns a FetchedPage into an
Extracted body, rules/ turns an article's text into Match values, and pipeline.py gathers the outcome
of one feed into a FeedUpdate that the store writes in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

# --- the words watcher writes (docs/schema.md lists each with its meaning) -----------------------------------

FeedStatus = Literal["ok", "not-modified", "error", "offline"]  # feeds.last_status
# Why a fetch failed (FetchError.kind): short stable words, in logs, metrics and feeds.last_error_kind.
FetchFailure = Literal[
    "http", "rate-limited", "timeout", "dns", "connect", "protocol", "url", "scheme", "redirects", "too-large",
    "encoding", "blocked", "challenge",
]  # fmt: skip
# Why a poll failed: a fetch failure, or a later stage; "offline" while the whole network is down (network.py).
FailureKind = FetchFailure | Literal["parse", "extract", "store", "error", "bug", "offline"]
NETWORK_FAILURES: frozenset[FailureKind] = frozenset({"dns", "connect"})  # what an outage looks like, per feed
BodySource = Literal["page", "feed-content", "feed-summary", "none"]  # where an article's text came from
# What came of fetching an article's page (articles.page_outcome): its text, a bot challenge (docs/reliability.md,
# walls), a cookie-consent wall, a paywall teaser, or no page at all (an error).
Wall = Literal["blocked", "consent", "paywall"]  # what walls.py recognises a page as, instead of an article
PageOutcome = Wall | Literal["ok", "failed"]
DeliveryStatus = Literal["pending", "sent", "dead", "skipped"]  # deliveries.status


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the fetcher needs to know about a feed to ask for it politely."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """A feed as the store knows it: config plus the state that decides when and how to poll it."""

    id: int
    name: str
    url: str
    interval: timedelta
    extract: bool = True
    etag: str | None = None
    last_modified: str | None = None
    error_count: int = 0
    first_poll: bool = True  # never polled successfully: its entries are recorded without alerting

    @property
    def state(self) -> FeedState:
        return FeedState(self.url, self.etag, self.last_modified)


@dataclass(frozen=True, slots=True)
class FetchedFeed:
    """A feed body as the server sent it (decoded from gzip or deflate, not yet from its charset)."""

    url: str  # the URL that was finally answered, after redirects
    content: bytes
    headers: dict[str, str]  # lower-cased names; feedparser reads the charset from content-type
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None  # set when every hop to `url` was a 301/308
    retry_after: timedelta | None = None  # a server's hint (Retry-After or Cache-Control max-age) for the next check


@dataclass(frozen=True, slots=True)
class NotModified:
    """A 304: the feed has not changed since the validators we sent."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    retry_after: timedelta | None = None
    permanent_redirect: str | None = None  # a moved feed can answer 304 at its new address


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """An article page as fetched: the final URL and the body as it arrived (charset detection is extraction's job).

    With `content_encoding` ("gzip" or "deflate") the body is still compressed: the worker decodes it
    (body.decoded_page), refusing more than `max_bytes` decoded, so the parent never inflates or pickles a
    page at full size."""

    url: str
    content: bytes
    content_type: str = ""
    content_encoding: str = ""
    max_bytes: int = 0  # the decoded size allowed (`[fetch] max_page_mb`); 0: the default's


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed, normalised: a stable id, a canonical URL, UTC times, text without markup surprises."""

    feed_url: str
    entry_id: str  # guid/id, else link, else a hash of title and date: stable across polls
    url: str | None  # canonical http(s) URL of the article, tracking parameters dropped; None when absent or unsafe
    link: str | None  # the http(s) link as the feed gave it (what we fetch)
    title: str
    summary: str = ""  # plain text
    content: str = ""  # plain text of the fullest content the feed carries
    author: str = ""
    published_at: datetime | None = None  # aware, UTC
    updated_at: datetime | None = None  # aware, UTC


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    link: str | None
    entries: tuple[Entry, ...]
    warning: str | None = None  # a recoverable problem (feedparser's bozo exception), kept for `status`


@dataclass(frozen=True, slots=True)
class Extracted:
    """What extraction found on an article page."""

    text: str
    title: str = ""
    author: str = ""
    published_at: datetime | None = None
    language: str = ""
    wall: Wall | None = None  # set when the page is a wall, not the article (walls.py)
    wall_sign: str = ""  # the sign it was recognised by


@dataclass(frozen=True, slots=True)
class Match:
    """Why an article belongs to a topic: the terms found and a snippet with them marked."""

    topic: str
    score: float
    terms: tuple[str, ...]
    snippet: str


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A topic's model overruling its rule, with why: a rule match held back (the model is almost sure it is
    wrong) or a possible match (the rule missed it; the model is almost sure it is right). learn/ makes them."""

    topic: str
    verdict: str  # "held" (rule matched, not alerted) | "possible" (rule missed; shown in digests to confirm)
    probability: float  # the model's estimate that the article belongs to the topic
    rule_score: float  # the rule's score (0 when it did not match)
    terms: tuple[str, ...]  # the rule's terms as found (held), or the parts of the rule that held (possible)
    snippet: str
    features: tuple[tuple[str, float], ...]  # the model's strongest features for its verdict: (name, weight)


@dataclass(frozen=True, slots=True)
class Article:
    """An entry with its body, ready to be matched and stored."""

    url: str  # canonical URL: the article's identity across feeds
    title: str
    body: str
    body_source: BodySource
    entry: Entry
    author: str = ""
    published_at: datetime | None = None
    language: str = ""
    matches: tuple[Match, ...] = ()
    model_calls: tuple[ModelCall, ...] = ()  # held-back and possible matches (topics that learn from labels)
    page_outcome: PageOutcome | None = None  # what came of fetching its page; None: no page was fetched


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """Everything one poll of one feed changes; store.apply_update writes it in one transaction."""

    feed_url: str
    checked_at: datetime
    next_check_at: datetime
    status: FeedStatus
    error: str | None = None
    error_kind: FailureKind | None = None
    etag: str | None = None
    last_modified: str | None = None
    title: str | None = None
    new_url: str | None = None  # a permanent redirect to record
    seen_entry_ids: tuple[str, ...] = ()  # every new entry id, matched or not
    articles: tuple[Article, ...] = ()  # matched articles (and, for the rematch window, unmatched ones)
    also_seen_at: tuple[tuple[str, Entry], ...] = ()  # (canonical URL already stored, entry of this feed)
    alert: bool = True  # False on a feed's first poll: record without alerting
    duration_s: float = 0.0
    entries_in_feed: int = 0
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending alert: an (article, topic, channel) triple read from the outbox."""

    id: int
    article_id: int
    topic: str
    channel: str
    created_at: datetime
    attempts: int = 0
    title: str = ""
    url: str = ""
    feeds: tuple[str, ...] = field(default_factory=tuple)
    published_at: datetime | None = None
    terms: tuple[str, ...] = ()
    snippet: str = ""
    possible: bool = False  # a possible match (learn/): the rule missed it; shown apart in digests, never urgent
    # Its story (docs/stories.md): the headline, every source (feed, link, time) and whether an earlier delivery
    # of the same story, topic and channel was already sent.
    story_id: int | None = None
    story_headline: str = ""
    story_sources: tuple[StorySource, ...] = ()
    story_alerted: bool = False


@dataclass(frozen=True, slots=True)
class StorySource:
    """One feed's report of a story, as a digest shows it."""

    feed: str
    url: str
    title: str
    at: datetime | None = None
    article_id: int = 0


@dataclass(frozen=True, slots=True)
class ReadArticle:
    """What one worker call makes of an article (workers.read_article): the body chosen between the page and the
    feed, its matches, and the page's metadata. The page's own text comes back only as the body (or a teaser), so
    it crosses the process boundary once."""

    title: str
    body: str
    body_source: BodySource
    matches: tuple[Match, ...]
    page: Extracted | None  # the page's metadata and wall, its text emptied; None when the page gave nothing
    page_failure: str = ""  # why the page gave nothing (no text, or extraction's own error)
