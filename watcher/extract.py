"""Article pages -> body text and metadata, with trafilatura (the only module that imports it).

`extract_text` runs in the worker processes of workers.py: extraction is the CPU ceiling of the whole pipeline
(~57 pages/s per core, measured), so the event loop never runs it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .models import BodySource, Extracted
from .walls import page_wall

MIN_TEXT_CHARS = 40  # less is a menu or a cookie banner, not an article

_LANG_RE = re.compile(rb"<html[^>]*\slang=[\"']?([A-Za-z]{2,3})", re.IGNORECASE)


def extract_text(content: bytes, url: str, metadata: bool = True) -> Extracted | None:
    """Run trafilatura on one page (in a worker process). None when the page has no main text.

    `metadata=False`: the page's title, author and date are not looked for (left empty). They stand in only for
    what a feed's entry lacks, and finding them was ~37% of trafilatura's CPU on 421 real pages (28.0 -> 17.6 ms a
    page), the same text either way (docs/architecture.md, "Performance facts")."""
    import trafilatura  # imported in the worker; the parent never loads it
    from trafilatura.settings import set_date_params

    # include_comments=False: trafilatura keeps reader comments by default, which we do not want in the body.
    # The page's date only stands in for a feed entry without one, so htmldate looks where sites declare it (meta
    # tags, JSON-LD, <time>, the URL) and skips its extensive search of the text: that search loads dateparser's
    # tables for every language it meets (~40 MB more per worker, for good) and took a fifth of the extraction
    # CPU, for a date on 29 more of 421 real pages (docs/architecture.md, "Performance facts").
    document = trafilatura.bare_extraction(
        content,
        url=url,
        include_comments=False,
        include_tables=False,
        with_metadata=metadata,
        fast=True,
        date_extraction_params=set_date_params(extensive=False),
    )
    if isinstance(document, dict):
        document = None  # bare_extraction returns a dict only with as_dict=True, which we never ask for
    text = (document.text or "").strip() if document is not None else ""
    # A consent wall, a paywall's teaser or a challenge answered with 200 is not the article (walls.py).
    wall = page_wall(content, text)
    if wall is not None:
        return Extracted(text=text, wall=wall[0], wall_sign=wall[1])
    if document is None or len(text) < MIN_TEXT_CHARS:
        return None
    lang = document.language or ""
    if not lang and (m := _LANG_RE.search(content[:4096])):
        lang = m.group(1).decode("ascii").lower()
    return Extracted(
        text=(document.text or "").strip(),
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


def article_body(page: Extracted | None, title: str, feed_body: str, feed_source: BodySource) -> tuple[str, BodySource]:
    """The longer of the page's text and the feed's own text (pure). A bot challenge, a consent wall or a paywall
    is not the article (walls.py): the feed's text is used, and a paywall's teaser only when the feed has none."""
    body, teaser = "", ""
    source: BodySource = "none"
    if page is not None and page.wall:
        teaser = page.text if page.wall == "paywall" else ""
    elif page is not None:
        body, source = _without_headline(page.text, title), "page"
    # A page that yields less than the feed itself carries (an unrecognised teaser) loses to the feed.
    if len(body) < len(feed_body):
        body, source = feed_body, feed_source
    if not body and teaser:
        body, source = teaser, "page"
    return body, source


def _without_headline(text: str, title: str) -> str:
    """The page's text without the headline that often opens it: the title is stored apart, and a body that
    repeats it runs it into the first sentence of snippets."""
    first, newline, rest = text.partition("\n")
    if newline and title and " ".join(first.split()).casefold() == " ".join(title.split()).casefold():
        return rest.lstrip()
    return text
