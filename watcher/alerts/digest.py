"""Deliveries -> a Message: items cleaned, grouped by topic (newest first), rendered to a subject, text and HTML.

Pure: `now`, the time zone and the topic order come in; nothing here reads the clock, the store or the network.

Feed text is hostile (docs/reliability.md, "What it may write"). Every string that came from a feed passes
`display_text()` (watcher/display.py) (control characters, bidi overrides and lone surrogates removed, one line where one line is
expected, truncated where displayed), every link passes `safe_url()` (http(s) only: feedparser passes
`javascript:` through unchanged), and HTML comes from Jinja2 templates with autoescape on. Channels that speak
another markup (Slack mrkdwn) escape for it themselves, from the same cleaned values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import jinja2

from .. import PROJECT_URL
from ..display import display_text, safe_url, split_marks, truncate
from ..models import Delivery

TITLE_MAX = 300  # characters shown of a title; a feed may send a megabyte
SNIPPET_MAX = 600
NAME_MAX = 80  # a feed name or a matched term
SUBJECT_TITLE_MAX = 120
SOURCES_MAX = 50  # sources listed under one story; a story carried by every feed is cut, with its count
KINDS = ("digest", "immediate", "test")

# --- values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceLine:
    """One outlet's report of a story, cleaned for display."""

    feed: str
    url: str | None
    title: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One article under one topic, cleaned for display. `url` is None unless it is a safe http(s) link."""

    delivery_id: int
    topic: str
    title: str
    url: str | None
    feeds: tuple[str, ...]
    published_at: datetime | None
    found_at: datetime | None
    terms: tuple[str, ...]
    snippet: str  # terms still marked with [[ ]]
    article_id: int = 0
    page_url: str | None = None  # the item's page on the analyst's page (web/), with [watcher] public_url set
    possible: bool = False  # a possible match (learn/): grouped apart, for the analyst to confirm or dismiss
    # Its story: every source that carried it, earliest first (docs/stories.md); the deliveries of the story's
    # other articles shown in this entry; and whether the story was alerted on this channel before.
    story_id: int | None = None
    sources: tuple[SourceLine, ...] = ()
    more_delivery_ids: tuple[int, ...] = ()
    alerted_before: bool = False

    @property
    def also_reported_by(self) -> tuple[SourceLine, ...]:
        """Every source but the first: the outlets that carried the story after it broke."""
        return self.sources[1:]

    @property
    def segments(self) -> tuple[tuple[str, bool], ...]:
        return split_marks(self.snippet)

    @property
    def sort_key(self) -> tuple[float, int]:
        when = self.published_at or self.found_at
        return (when.timestamp() if when else 0.0, self.delivery_id)


@dataclass(frozen=True, slots=True)
class TopicGroup:
    topic: str
    description: str
    items: tuple[AlertItem, ...]
    possible: bool = False  # the topic's possible matches, after every topic's matches


POSSIBLE_DESCRIPTION = "possible matches: confirm or dismiss (watcher label ARTICLE_ID --topic TOPIC yes|no)"


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel sends: the grouped items plus their rendering. One Message is one email / Slack post / file."""

    kind: str  # digest | immediate | test
    channel: str
    created_at: datetime
    timezone: str
    groups: tuple[TopicGroup, ...]
    subject: str
    text: str
    html: str
    part: tuple[int, int] = (1, 1)  # (n, of): a batch split to fit a channel's limits

    @property
    def items(self) -> tuple[AlertItem, ...]:
        return tuple(item for group in self.groups for item in group.items)

    @property
    def delivery_ids(self) -> tuple[int, ...]:
        return tuple(i for item in self.items for i in (item.delivery_id, *item.more_delivery_ids) if i)


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """What rendering needs from the config: the time zone and the topics in the order the user wrote them."""

    timezone: str = "UTC"
    topics: tuple[tuple[str, str], ...] = ()  # (name, description)
    public_url: str = ""  # [watcher] public_url: each item links to its page there (a page that only shows)

    @classmethod
    def from_config(cls, config: _RenderedConfig) -> RenderSettings:
        return cls(
            config.timezone,
            tuple((t.name, display_text(t.description, 200)) for t in config.topics),
            getattr(config, "public_url", ""),
        )


class _Topic(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...


class _RenderedConfig(Protocol):
    """What rendering reads of a Config (typed by shape, so this pure module does not import config.py)."""

    @property
    def timezone(self) -> str: ...
    @property
    def topics(self) -> Sequence[_Topic]: ...


def item_from_delivery(d: Delivery) -> AlertItem:
    """The best headline of a story is its earliest article's title by publication time (the outlet that broke
    it; the store recomputes it when a source joins); an article without a story shows its own title."""
    return AlertItem(
        delivery_id=d.id,
        topic=display_text(d.topic, NAME_MAX),
        title=display_text(d.story_headline or d.title, TITLE_MAX) or "(untitled)",
        url=safe_url(d.url),
        feeds=tuple(dict.fromkeys(f for f in (display_text(f, NAME_MAX) for f in d.feeds) if f)),
        published_at=d.published_at,
        found_at=d.created_at,
        terms=tuple(dict.fromkeys(t for t in (display_text(t, NAME_MAX) for t in d.terms) if t)),
        snippet=display_text(d.snippet, SNIPPET_MAX),
        article_id=d.article_id,
        possible=d.possible,
        story_id=d.story_id,
        sources=tuple(
            SourceLine(display_text(src.feed, NAME_MAX), safe_url(src.url), display_text(src.title, TITLE_MAX), src.at)
            for src in d.story_sources[:SOURCES_MAX]
        ),
        alerted_before=d.story_alerted,
    )


def with_page_links(items: Sequence[AlertItem], public_url: str) -> list[AlertItem]:
    """Each item with the link to its article's page (`{public_url}/article/{id}`): a GET that changes nothing."""
    if not public_url:
        return list(items)
    base = public_url.rstrip("/")
    return [replace(i, page_url=safe_url(f"{base}/article/{i.article_id}")) if i.article_id else i for i in items]


def by_story(items: Sequence[AlertItem]) -> list[AlertItem]:
    """One entry per story: the entries of a story's other articles fold into its earliest one."""
    entries: dict[object, AlertItem] = {}
    for item in sorted(items, key=lambda i: i.sort_key):
        key = ("story", item.story_id) if item.story_id is not None else ("delivery", item.delivery_id, id(item))
        first = entries.get(key)
        if first is None:
            entries[key] = item
            continue
        entries[key] = replace(
            first,
            terms=tuple(dict.fromkeys(first.terms + item.terms)),
            more_delivery_ids=first.more_delivery_ids + (item.delivery_id, *item.more_delivery_ids),
            alerted_before=first.alerted_before or item.alerted_before,
        )
    return list(entries.values())


def group_items(items: Sequence[AlertItem], settings: RenderSettings) -> tuple[TopicGroup, ...]:
    """Group by topic in config order (unknown topics after, by name); one entry per story, newest first."""
    descriptions = dict(settings.topics)
    order = {name: i for i, (name, _) in enumerate(settings.topics)}
    by_topic: dict[tuple[bool, str], list[AlertItem]] = {}
    for item in items:
        by_topic.setdefault((item.possible, item.topic), []).append(item)
    by_topic = {key: by_story(entries) for key, entries in by_topic.items()}
    keys = sorted(by_topic, key=lambda k: (k[0], order.get(k[1], len(order)), k[1]))
    return tuple(
        TopicGroup(
            t,
            POSSIBLE_DESCRIPTION if possible else descriptions.get(t, ""),
            tuple(sorted(by_topic[(possible, t)], key=lambda i: i.sort_key, reverse=True)),
            possible,
        )
        for possible, t in keys
    )


def build_message(
    kind: str,
    channel: str,
    items: Sequence[AlertItem],
    now: datetime,
    settings: RenderSettings,
    *,
    part: tuple[int, int] = (1, 1),
) -> Message:
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    groups = group_items(with_page_links(items, settings.public_url), settings)
    subject = render_subject(kind, channel, groups, part)
    context = {
        "kind": kind,
        "channel": display_text(channel, NAME_MAX),
        "groups": groups,
        "count": sum(len(g.items) for g in groups),
        "subject": subject,
        "generated": format_time(now, settings.timezone),
        "part": part,
        "tz": settings.timezone,
    }
    return Message(
        kind=kind,
        channel=channel,
        created_at=now,
        timezone=settings.timezone,
        groups=groups,
        subject=subject,
        text=_environment().get_template("message.txt").render(context).strip() + "\n",
        html=_environment().get_template("message.html").render(context),
        part=part,
    )


def subset(message: Message, items: Sequence[AlertItem], part: tuple[int, int]) -> Message:
    """The same message with only `items` (a part of a split): re-rendered, topic order kept."""
    settings = RenderSettings(
        message.timezone, tuple((g.topic, g.description) for g in message.groups if not g.possible)
    )
    return build_message(message.kind, message.channel, items, message.created_at, settings, part=part)


def split_by_count(message: Message, max_items: int) -> list[Message]:
    items = message.items
    if len(items) <= max_items:
        return [message]
    chunks = [items[i : i + max_items] for i in range(0, len(items), max_items)]
    return [subset(message, chunk, (n, len(chunks))) for n, chunk in enumerate(chunks, start=1)]


def sample_message(channel: str, now: datetime, settings: RenderSettings) -> Message:
    """`watcher alerts test`: one harmless sample item, so a user can check credentials and formatting."""
    item = AlertItem(
        delivery_id=0,
        topic="test",
        title=f"Test message from watcher to channel {display_text(channel, NAME_MAX)}",
        url=PROJECT_URL,
        feeds=("watcher",),
        published_at=now,
        found_at=now,
        terms=("test",),
        snippet="If you can read this, the channel works. Matched terms look like [[this]].",
    )
    return build_message("test", channel, [item], now, replace(settings, topics=(("test", "a test message"),)))


# --- rendering helpers --------------------------------------------------------------------------------------


def render_subject(kind: str, channel: str, groups: Sequence[TopicGroup], part: tuple[int, int] = (1, 1)) -> str:
    """'watcher: 7 new items — drone_cooperation (4), troop_deployment (3)'; one line, safe for a header."""
    count = sum(len(g.items) for g in groups)
    if kind == "test":
        text = f"watcher: test message for channel {channel}"
    elif count == 0:
        text = "watcher: no new items"
    elif kind == "immediate" and count == 1:
        group = groups[0]
        text = f"watcher alert: {group.topic} — {truncate(group.items[0].title, SUBJECT_TITLE_MAX)}"
    else:
        head = "watcher alert" if kind == "immediate" else "watcher"
        shown = ", ".join(f"{g.topic} ({len(g.items)})" for g in groups[:4])
        more = f", +{len(groups) - 4} more" if len(groups) > 4 else ""
        text = f"{head}: {count} new {plural(count, 'item')} — {shown}{more}"
    if part[1] > 1:
        text += f" ({part[0]}/{part[1]})"
    return display_text(text, 250)


def item_meta(item: AlertItem, timezone: str) -> str:
    """'Reuters, Yonhap · published 2026-11-26 16:09 KST': where and when, in the user's time zone."""
    feeds = ", ".join(item.feeds) if item.feeds else "unknown source"
    if item.published_at:
        return f"{feeds} · published {format_time(item.published_at, timezone)}"
    if item.found_at:
        return f"{feeds} · found {format_time(item.found_at, timezone)}"
    return feeds


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def format_time(when: datetime | None, timezone: str) -> str:
    if when is None:
        return ""
    try:
        local = when.astimezone(ZoneInfo(timezone))
    except (ValueError, OverflowError):  # a date at the edge of the calendar (year 9999 in some feeds)
        local = when
    return local.strftime("%Y-%m-%d %H:%M %Z").strip()


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("watcher.alerts", "templates"),
        # Autoescape every .html template: feed text is hostile. The .txt templates are plain text.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["localtime"] = format_time
    env.filters["meta"] = item_meta
    env.filters["plural"] = plural
    return env
