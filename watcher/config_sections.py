"""The tables of config.toml, one frozen value each ([fetch], [schedule], [extract], [stories], [[feeds]], [terms],
[topics], [channels]), and the reader that fills it from a `Table`, recording every problem instead of raising.
config.py puts them together into `Config`; everything imports them from there.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import timedelta

from . import DEFAULT_USER_AGENT
from .alerts.channel import ChannelOptions
from .alerts.registry import CHANNEL_TYPES
from .config_reader import Table
from .errors import ConfigProblem
from .rules import TopicConfig
from .schedules import SCHEDULE_FORMS, parse_schedule

# --- the values -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchSettings:
    timeout: timedelta = timedelta(seconds=30)  # total deadline for one request, redirects included
    connect_timeout: timedelta = timedelta(seconds=10)
    read_timeout: timedelta = timedelta(seconds=20)
    max_feed_bytes: int = 10 * 2**20  # decoded bytes; counted while streaming
    max_page_bytes: int = 5 * 2**20
    concurrency: int = 10  # requests in flight at once, all hosts
    per_host: int = 2  # requests in flight to one host
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    allow_networks: tuple[str, ...] = ()  # CIDRs the address guard lets through (intranet feeds, tests)
    use_env_proxy: bool = False  # HTTP(S)_PROXY from the environment is ignored unless this is set


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    interval: timedelta = timedelta(minutes=15)  # default time between two polls of a feed
    jitter: float = 0.1  # +- this fraction of the interval, so feeds of one host spread out
    max_backoff: timedelta = timedelta(hours=6)  # a failing feed is retried at least this often, forever
    tick: timedelta = timedelta(seconds=30)  # how often the daemon asks the store for due feeds
    alerts: timedelta = timedelta(seconds=20)  # how often the daemon sends due alerts (immediate ones within a minute)


@dataclass(frozen=True, slots=True)
class ExtractSettings:
    enabled: bool = True
    workers: int = 0  # extraction processes; 0 = one per core
    timeout: timedelta = timedelta(seconds=20)  # per page, after which the worker is stopped
    keep_unmatched: timedelta = timedelta(days=3)  # unmatched articles' text kept for `rematch`; 0 keeps none
    max_entries_per_feed: int = 200  # newest first; a feed listing 10,000 items is cut, not obeyed


@dataclass(frozen=True, slots=True)
class StoryConfig:
    # An article joins a story seen within this long; older ones are history. "0s": every article is its own story.
    window: timedelta = timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    name: str
    url: str
    interval: timedelta | None = None  # None: the [schedule] default
    extract: bool = True
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    type: str  # a key of alerts.registry.CHANNEL_TYPES
    mode: str = "digest"  # "digest": on `schedule`; "immediate": within a minute of the match
    schedule: str = "daily at 07:00"
    topics: tuple[str, ...] = ()  # empty: every topic
    urgent_immediately: bool = True  # urgent topics skip the digest and go out at once
    send_empty: bool = False
    options: ChannelOptions = field(
        default_factory=ChannelOptions
    )  # the type's own keys, typed and checked by its ChannelType


# --- the readers ------------------------------------------------------------------------------------------


def read_fetch(t: Table) -> FetchSettings:
    d = FetchSettings()
    mb = 2**20
    networks = t.strings("allow_networks")
    for i, net in enumerate(networks):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            t.problems.append(
                ConfigProblem(f"{t.key('allow_networks')}[{i}]", 'a network such as "10.0.0.0/8"', repr(net))
            )
    settings = FetchSettings(
        timeout=t.duration("timeout", d.timeout),
        connect_timeout=t.duration("connect_timeout", d.connect_timeout),
        read_timeout=t.duration("read_timeout", d.read_timeout),
        max_feed_bytes=int(t.number("max_feed_mb", d.max_feed_bytes / mb, minimum=0.001, integer=False) * mb),
        max_page_bytes=int(t.number("max_page_mb", d.max_page_bytes / mb, minimum=0.001, integer=False) * mb),
        concurrency=t.number("concurrency", d.concurrency, minimum=1),
        per_host=t.number("per_host", d.per_host, minimum=1),
        max_redirects=t.number("max_redirects", d.max_redirects, minimum=0),
        user_agent=t.text("user_agent", d.user_agent),
        allow_networks=networks,
        use_env_proxy=t.flag("use_env_proxy", d.use_env_proxy),
    )
    t.reject_unknown()
    return settings


def read_schedule(t: Table) -> ScheduleSettings:
    d = ScheduleSettings()
    jitter = t.number("jitter", d.jitter, integer=False)
    if jitter > 0.5:
        t.problem("jitter", "a fraction between 0 and 0.5", jitter)
        jitter = d.jitter
    settings = ScheduleSettings(
        interval=t.duration("interval", d.interval),
        jitter=float(jitter),
        max_backoff=t.duration("max_backoff", d.max_backoff),
        tick=t.duration("tick", d.tick),
        alerts=t.duration("alerts", d.alerts),
    )
    t.reject_unknown()
    return settings


def read_extract(t: Table) -> ExtractSettings:
    d = ExtractSettings()
    settings = ExtractSettings(
        enabled=t.flag("enabled", d.enabled),
        workers=t.number("workers", d.workers),
        timeout=t.duration("timeout", d.timeout),
        keep_unmatched=t.duration("keep_unmatched", d.keep_unmatched, allow_zero=True),
        max_entries_per_feed=t.number("max_entries_per_feed", d.max_entries_per_feed, minimum=1),
    )
    t.reject_unknown()
    return settings


def read_stories(t: Table) -> StoryConfig:
    settings = StoryConfig(window=t.duration("window", StoryConfig().window, allow_zero=True))
    t.reject_unknown()
    return settings


def read_feeds(top: Table, problems: list[ConfigProblem]) -> tuple[FeedConfig, ...]:
    raw = top.get("feeds", list, [], "an array of tables: [[feeds]] with name and url")
    feeds: list[FeedConfig] = []
    names: dict[str, int] = {}
    urls: dict[str, int] = {}
    for i, item in enumerate(raw):
        t = Table(item, f"feeds[{i}]", problems)
        if not t.ok:
            continue
        name = t.text("name", None)
        url = t.text("url", None)
        if name is None:
            t.missing("name", "a name for the feed (a string)")
        elif name in names:
            t.problem("name", f"a name not used before (feeds[{names[name]}] has it)", name)
        if url is None:
            t.missing("url", "the feed's URL (a string)")
        elif not re.match(r"(?i)^https?://[^/\s]+", url):
            t.problem("url", "an http:// or https:// URL", url)
        elif url in urls:
            t.problem("url", f"a URL not used before (feeds[{urls[url]}] has it)", url)
        feed = FeedConfig(
            name=name or f"feed-{i}",
            url=url or "",
            interval=t.duration("interval", None),
            extract=t.flag("extract", True),
            enabled=t.flag("enabled", True),
        )
        t.reject_unknown()
        names.setdefault(feed.name, i)
        urls.setdefault(feed.url, i)
        feeds.append(feed)
    return tuple(feeds)


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def read_terms(t: Table) -> dict[str, str]:
    terms: dict[str, str] = {}
    for name in list(t.data):
        value = t.get(name, str, None, "a rule expression (a string)")
        if not _NAME_RE.match(name):
            t.problem(name, "a name of letters, digits, _ and -", name)
        elif value is not None:
            terms[name] = value
    return terms


def read_topics(t: Table) -> tuple[TopicConfig, ...]:
    topics = []
    for name in list(t.data):
        t.used.add(name)
        sub = t.table(name)
        if not sub.ok:
            continue
        if not _NAME_RE.match(name):
            t.problem(name, "a topic name of letters, digits, _ and -", name)
        rule = sub.text("rule", None)
        if rule is None:
            sub.missing("rule", "a rule such as 'drone AND (Russia OR Iran)'")
        topics.append(
            TopicConfig(
                name=name,
                rule=rule or "",
                description=sub.text("description", ""),
                min_score=float(sub.number("min_score", 1.0, integer=False)),
                urgent=sub.flag("urgent", False),
                learn=sub.flag("learn", True),
                hold_below=_probability(sub, "hold_below", 0.1),
                possible_above=_probability(sub, "possible_above", 0.9),
            )
        )
        sub.reject_unknown()
    return tuple(topics)


def _probability(t: Table, name: str, default: float) -> float:
    value = float(t.number(name, default, integer=False))
    if not 0 <= value <= 1:
        t.problem(name, "a probability from 0 to 1", value)
        return default
    return value


COMMON_CHANNEL_KEYS = ("type", "mode", "schedule", "topics", "urgent_immediately", "send_empty")


def read_channels(t: Table, topic_names: set[str]) -> tuple[ChannelConfig, ...]:
    channels = []
    type_names = ", ".join(CHANNEL_TYPES)
    for name in list(t.data):
        t.used.add(name)
        sub = t.table(name)
        if not sub.ok:
            continue
        ctype = sub.text("type", None, choices=tuple(CHANNEL_TYPES))
        if ctype is None:
            if "type" not in sub.data:
                sub.missing("type", f"the channel's type, one of {type_names}", "no type key")
            # Whatever the type was meant to be, name the keys that exist rather than call every key unknown.
            sub.reject_unknown(
                tuple(k for ct in CHANNEL_TYPES.values() for k in ct.option_keys()) + COMMON_CHANNEL_KEYS
            )
            continue
        mode = sub.text("mode", "digest", choices=("digest", "immediate"))
        schedule = sub.text("schedule", "daily at 07:00")
        try:
            parse_schedule(schedule)
        except ValueError as e:
            sub.problem("schedule", f"{SCHEDULE_FORMS} ({e})", repr(schedule))
        topics = sub.strings("topics")
        for i, topic in enumerate(topics):
            if topic not in topic_names:
                sub.problems.append(
                    ConfigProblem(f"{sub.key('topics')}[{i}]", "the name of a topic in [topics]", repr(topic))
                )
        channels.append(
            ChannelConfig(
                name=name,
                type=ctype,
                mode=mode,
                schedule=schedule,
                topics=topics,
                urgent_immediately=sub.flag("urgent_immediately", True),
                send_empty=sub.flag("send_empty", False),
                options=CHANNEL_TYPES[ctype].read_options(sub),
            )
        )
        sub.reject_unknown()
    return tuple(channels)
