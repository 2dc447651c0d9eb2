"""From a site's address to its feed: `watcher feeds add https://example.org/` (people paste pages, not feeds).

The order is the one feed readers settled on (the RSS autodiscovery note, https://www.rssboard.org/rss-autodiscovery,
and WHATWG HTML's rel=alternate):
  1. the URL itself, when it already is a feed;
  2. `<link rel="alternate" type="application/rss+xml|atom+xml|feed+json|...">` in the page, in page order,
     resolved against `<base href>` or the page's own (final) URL; the first that parses wins unless `pick`
     names another, and the rest are reported so the user can choose;
  3. the paths blogs and CMSs use (/feed, /rss.xml, /atom.xml, /index.xml ...), below the page first, then at
     the site's root.
Every candidate is fetched through the Fetcher (so the address guard and size caps apply, as for any feed) and
must parse with parse.parse_feed before it is accepted: a link tag is a claim, not a feed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from .errors import FetchError, ParseError
from .fetch import Fetcher
from .models import FeedState, FetchedFeed
from .parse import parse_feed
from .text import redact_url

# The types feed readers follow. application/json only counts with rel=alternate (old JSON Feed pages used it);
# every candidate must still parse, so a REST API link of that type is rejected later, not trusted.
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/feed+json",
    "application/json",
    "application/xml",
    "text/xml",
)
# Where blogs and CMSs put their feeds when the page does not say: WordPress, Ghost, Hugo, Jekyll, Blogger, ...
COMMON_PATHS = (
    "feed",
    "rss",
    "rss.xml",
    "atom.xml",
    "feed.xml",
    "index.xml",
    "feed/",
    "feeds/posts/default",
    "index.rss",
)
MAX_LINKS = 50  # a page announcing more feeds than this is not one to trust with our requests
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


@dataclass(frozen=True, slots=True)
class FeedLink:
    """A feed a page announces with a link tag."""

    url: str
    title: str = ""
    type: str = ""


@dataclass(frozen=True, slots=True)
class Discovery:
    """The feed found for an address, how it was found, and what else the page offered."""

    url: str  # the feed to subscribe to
    title: str  # the feed's own title
    found_by: str  # "feed" (the address was a feed), "link" (a link tag), "path" (a common path)
    entries: int  # items in the feed now
    links: tuple[FeedLink, ...] = ()  # every feed the page announced, in page order (the chosen one included)


async def discover_feed(fetcher: Fetcher, url: str, *, pick: int | None = None) -> Discovery:
    """Find and check the feed for `url`. `pick` (1-based) chooses among the page's link tags.

    Raises FetchError when the address itself cannot be fetched, ParseError when no feed was found.
    """
    try:
        first = await fetcher.fetch_feed(FeedState(url))
    except FetchError as e:  # say which address answered so: the user may have pasted several
        raise FetchError(e.url, f"{redact_url(url)}: {e.message}", kind=e.kind, status=e.status) from e
    assert isinstance(first, FetchedFeed)  # no validators were sent, so no 304
    page_url = first.url
    parsed = await _parse(first)
    if parsed is not None:
        return Discovery(first.permanent_redirect or url, parsed[0], "feed", parsed[1])

    links = find_feed_links(first.content, page_url, first.headers.get("content-type", ""))
    tried: dict[str, str] = {}  # each candidate tried -> why it is not a feed
    if pick is not None:
        if not 1 <= pick <= len(links):
            raise ParseError(f"{redact_url(url)} announces {len(links)} feed(s); there is no number {pick}")
        candidates = [links[pick - 1].url]
    else:
        candidates = [link.url for link in links]
    for candidate in candidates:
        found = await _try(fetcher, candidate, tried)
        if found:
            return Discovery(found[0], found[1], "link", found[2], links)
    if pick is None:
        for candidate in guess_paths(page_url):
            if candidate in tried or candidate in (url, page_url):
                continue
            found = await _try(fetcher, candidate, tried)
            if found:
                return Discovery(found[0], found[1], "path", found[2], links)
    paths = len(tried) - len(candidates)
    if pick is not None:
        why = f"feed number {pick} of the page ({redact_url(candidates[0])}) cannot be read: {tried[candidates[0]]}"
    elif links:
        # The announced feeds' own failures are the likely cause (a CDN host that does not resolve, a 403):
        # name them, not only their count.
        causes = "; ".join(f"{redact_url(c)}: {tried[c]}" for c in candidates[:3])
        more = f" (and {len(candidates) - 3} more)" if len(candidates) > 3 else ""
        why = f"the page announces {len(links)} feed(s), none readable ({causes}{more}), nor any of {paths} usual paths"
    else:
        why = (
            f"the page announces no feed, and none of {paths} usual paths (/feed, /rss.xml, /atom.xml, ...) serves one"
        )
    raise ParseError(f"no feed found for {redact_url(url)}: {why}")


async def _try(fetcher: Fetcher, url: str, tried: dict[str, str]) -> tuple[str, str, int] | None:
    """(feed URL, title, entries) when `url` serves a feed; None when it does not, with the reason in `tried`."""
    tried[url] = "not tried"
    try:
        fetched = await fetcher.fetch_feed(FeedState(url))
    except FetchError as e:
        tried[url] = e.message
        return None
    assert isinstance(fetched, FetchedFeed)
    parsed = await _parse(fetched)
    if parsed is None:
        tried[url] = "not a feed (it does not parse as RSS, Atom or JSON Feed)"
        return None
    return fetched.permanent_redirect or url, parsed[0], parsed[1]


async def _parse(fetched: FetchedFeed) -> tuple[str, int] | None:
    try:
        # feedparser is CPU work; off the loop, as in the pipeline.
        feed = await asyncio.to_thread(parse_feed, fetched)
    except ParseError:
        return None
    return feed.title, len(feed.entries)


def guess_paths(page_url: str) -> list[str]:
    """The usual feed paths below the page's directory, then at the site's root, without repeats."""
    parts = urlsplit(page_url)
    root = f"{parts.scheme}://{parts.netloc}/"
    directory = urljoin(page_url, "./")
    bases = [directory, root] if directory != root else [root]
    seen: dict[str, None] = {}
    for base in bases:
        for path in COMMON_PATHS:
            seen.setdefault(urljoin(base, path), None)
    return list(seen)


def find_feed_links(content: bytes, page_url: str, content_type: str = "") -> tuple[FeedLink, ...]:
    """The feeds a page announces with `<link rel="alternate" type=...>` (or rel="feed"), absolute, in page order."""
    finder = _LinkFinder()
    try:
        finder.feed(_decode(content, content_type))
        finder.close()
    except AssertionError:  # html.parser's own checks on hopeless markup: keep what was found before it
        pass
    base = urljoin(page_url, finder.base) if finder.base else page_url
    links: dict[str, FeedLink] = {}
    for attrs in finder.links[: MAX_LINKS * 4]:
        rel = set((attrs.get("rel") or "").lower().split())
        ctype = (attrs.get("type") or "").split(";")[0].strip().lower()
        href = (attrs.get("href") or "").strip()
        if not href or "stylesheet" in rel:
            continue
        if not (("alternate" in rel and ctype in FEED_TYPES) or ("feed" in rel and (not ctype or ctype in FEED_TYPES))):
            continue
        url = urljoin(base, href)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            continue  # javascript:, data:, feed: ... are never fetched
        links.setdefault(url, FeedLink(url, " ".join((attrs.get("title") or "").split()), ctype))
        if len(links) >= MAX_LINKS:
            break
    return tuple(links.values())


class _LinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[dict[str, str | None]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self.links.append({k.lower(): v for k, v in attrs})
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href") or None

    handle_startendtag = handle_starttag


def _decode(content: bytes, content_type: str) -> str:
    """The page as text: its declared charset (header, then <meta>), else UTF-8; never fails."""
    declared = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", content_type, re.I)
    names = [declared.group(1)] if declared else []
    if m := _CHARSET.search(content[:4096]):
        names.append(m.group(1).decode("ascii"))
    for name in names:
        try:
            return content.decode(name, errors="replace")
        except LookupError:
            continue
    return content.decode("utf-8", errors="replace")
