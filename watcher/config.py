"""config.toml -> Config: frozen values, every problem reported at once with file, key path and expectation.

The file is read with the standard library's tomllib. Each table is read through a `Table`, which records a
problem instead of raising, so a user with five typos sees five lines, not one per run. Unknown keys are
problems too: a misspelt key silently ignored is the commonest config bug of feed tools.

Secrets never live in the file: a key ending in `_env` names the environment variable that holds the
secret, and is resolved when the secret is used (so `watcher check` can warn about an unset variable
without the daemon refusing to start on a channel nobody uses yet).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import DEFAULT_USER_AGENT
from .alerts.channel import ChannelOptions
from .alerts.registry import CHANNEL_TYPES
from .config_reader import Table, parse_duration, resolve_secret
from .errors import ConfigError, ConfigProblem, RuleError
from .rules import CompiledTopic, TopicConfig, compile_topic
from .schedules import SCHEDULE_FORMS, parse_schedule

__all__ = ["Config", "config_from_dict", "load_config", "parse_duration", "resolve_secret"]


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


DEFAULT_DATABASE = "watcher.db"
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(value: str) -> bool:
    """True for a PostgreSQL URL; anything else in `[watcher] database` is a SQLite file path."""
    return value.startswith(DATABASE_URL_SCHEMES)


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    database: str = DEFAULT_DATABASE  # a SQLite file, or a postgresql:// URL (docs/schema.md, "PostgreSQL")
    password_env: str = ""  # the variable holding the PostgreSQL password (never the file)
    timezone: str = "UTC"
    log_level: str = "info"
    alert_on_first_poll: bool = False  # a new feed's existing items are recorded, not alerted
    http: str = ""  # "host:port" for /healthz, /metrics and the analyst's page (web/); "" serves nothing
    # The page's password, from this environment variable: required to open the pages on any address but loopback.
    web_password_env: str = ""
    public_url: str = ""  # where people reach the page ("https://watcher.example.org"): links in alerts
    fetch: FetchSettings = FetchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    extract: ExtractSettings = ExtractSettings()
    stories: StoryConfig = StoryConfig()
    feeds: tuple[FeedConfig, ...] = ()
    terms: dict[str, str] = field(default_factory=dict)
    topics: tuple[TopicConfig, ...] = ()
    channels: tuple[ChannelConfig, ...] = ()
    # The topics' rules, compiled once when the file is loaded (config_from_dict); empty with compile_rules=False.
    compiled_topics: tuple[CompiledTopic, ...] = field(default=(), compare=False, repr=False)

    def feed_interval(self, feed: FeedConfig) -> timedelta:
        return feed.interval or self.schedule.interval

    def routes(self) -> dict[str, tuple[str, ...]]:
        """topic -> the channels that alert on it (a channel with no `topics` takes every topic)."""
        return {t.name: tuple(c.name for c in self.channels if not c.topics or t.name in c.topics) for t in self.topics}

    def possible_routes(self) -> dict[str, tuple[str, ...]]:
        """topic -> the digest channels that show its possible matches (learn/): never an immediate channel."""
        digest = {c.name for c in self.channels if c.mode == "digest"}
        return {topic: tuple(c for c in channels if c in digest) for topic, channels in self.routes().items()}

    def missing_secrets(self, environ: Mapping[str, str]) -> list[str]:
        """Every secret the config names (a channel's `*_env` key) that `environ` lacks, as `check` and the daemon's
        start-up warn about it: found at once, not at the first send."""
        return [
            f"channels.{channel.name}.{key}: environment variable {env} is not set; channel {channel.name!r} "
            "cannot send until it is"
            for channel in self.channels
            for key, env in channel.options.secret_envs().items()
            if not environ.get(env)
        ]


# --- reading ----------------------------------------------------------------------------------------------


def database_setting(path: str | Path) -> str:
    """`[watcher] database` alone, read from a file that may be broken elsewhere: `status --check` must find the
    database (and report the broken config as a reason) instead of failing on the config itself."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        value = data.get("watcher", {}).get("database")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        value = None
    return value if isinstance(value, str) and value else DEFAULT_DATABASE


_HTTP_ADDRESS = re.compile(r"\[[0-9A-Fa-f:.]+\]:\d{1,5}|[A-Za-z0-9.-]+:\d{1,5}")


def load_config(path: str | os.PathLike[str], *, compile_rules: bool = True) -> Config:
    """Read and check a config file. Raises ConfigError listing every problem found."""
    file = str(path)
    try:
        raw = Path(file).read_bytes()
    except OSError as e:
        raise ConfigError(file, [ConfigProblem("(file)", "a readable file", e.strerror or str(e))]) from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(file, [ConfigProblem("(file)", "UTF-8 text", f"a byte that is not at {e.start}")]) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(file, [ConfigProblem("(file)", "valid TOML", str(e))]) from e
    return config_from_dict(data, file, compile_rules=compile_rules)


def config_from_dict(data: dict[str, Any], file: str = "<config>", *, compile_rules: bool = True) -> Config:
    problems: list[ConfigProblem] = []
    top = Table(data, "", problems)

    w = top.table("watcher")
    database = w.text("database", DEFAULT_DATABASE)
    if isinstance(database, str) and is_database_url(database) and urlsplit(database).password is not None:
        w.problem(
            "database",
            "a URL without a password (name the variable that holds it in [watcher] password_env)",
            "a URL with a password",
        )
    password_env = w.text("password_env", "")
    if password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
        w.problem("password_env", "the name of an environment variable, such as WATCHER_DB_PASSWORD", password_env)
        password_env = ""
    timezone = w.text("timezone", "UTC")
    if "timezone" in w.data and isinstance(timezone, str):
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            w.problem("timezone", 'an IANA time zone such as "Europe/Berlin" or "UTC"', timezone)
            timezone = "UTC"
    log_level = w.text("log_level", "info", choices=("debug", "info", "warning", "error"))
    alert_on_first_poll = w.flag("alert_on_first_poll", False)
    http = w.text("http", "")
    if http and not _HTTP_ADDRESS.fullmatch(http):
        w.problem("http", 'an address to listen on, such as "127.0.0.1:9108" or "[::1]:9108"', http)
        http = ""
    web_password_env = w.text("web_password_env", "")
    if web_password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", web_password_env):
        w.problem(
            "web_password_env", "the name of an environment variable, such as WATCHER_WEB_PASSWORD", web_password_env
        )
        web_password_env = ""
    public_url = w.text("public_url", "").rstrip("/")
    if public_url and not re.fullmatch(r"(?i)https?://[^/\s?#]+(/[^\s?#]*)?", public_url):
        w.problem(
            "public_url", 'the address people open the page at, such as "https://watcher.example.org"', public_url
        )
        public_url = ""
    w.reject_unknown()

    fetch = _read_fetch(top.table("fetch"))
    schedule = _read_schedule(top.table("schedule"))
    extract = _read_extract(top.table("extract"))
    stories = _read_stories(top.table("stories"))
    feeds = _read_feeds(top, problems)
    terms = _read_terms(top.table("terms"))
    topics = _read_topics(top.table("topics"))
    channels = _read_channels(top.table("channels"), {t.name for t in topics})
    top.reject_unknown()

    config = Config(
        path=file,
        database=database,
        timezone=timezone,
        log_level=log_level,
        alert_on_first_poll=alert_on_first_poll,
        http=http,
        web_password_env=web_password_env,
        password_env=password_env,
        public_url=public_url,
        fetch=fetch,
        schedule=schedule,
        extract=extract,
        stories=stories,
        feeds=feeds,
        terms=terms,
        topics=topics,
        channels=channels,
    )
    if compile_rules:
        # Compiled even when other keys have problems, so `watcher check` lists a broken rule beside the typos.
        compiled, rule_problems = _compile_rules(topics, terms)
        problems += rule_problems
        config = replace(config, compiled_topics=compiled)
    if problems:
        raise ConfigError(file, problems)
    return config


def _read_fetch(t: Table) -> FetchSettings:
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


def _read_schedule(t: Table) -> ScheduleSettings:
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


def _read_extract(t: Table) -> ExtractSettings:
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


def _read_stories(t: Table) -> StoryConfig:
    settings = StoryConfig(window=t.duration("window", StoryConfig().window, allow_zero=True))
    t.reject_unknown()
    return settings


def _read_feeds(top: Table, problems: list[ConfigProblem]) -> tuple[FeedConfig, ...]:
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


def _read_terms(t: Table) -> dict[str, str]:
    terms: dict[str, str] = {}
    for name in list(t.data):
        value = t.get(name, str, None, "a rule expression (a string)")
        if not _NAME_RE.match(name):
            t.problem(name, "a name of letters, digits, _ and -", name)
        elif value is not None:
            terms[name] = value
    return terms


def _read_topics(t: Table) -> tuple[TopicConfig, ...]:
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


_COMMON_CHANNEL_KEYS = ("type", "mode", "schedule", "topics", "urgent_immediately", "send_empty")


def _read_channels(t: Table, topic_names: set[str]) -> tuple[ChannelConfig, ...]:
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
                tuple(k for ct in CHANNEL_TYPES.values() for k in ct.option_keys()) + _COMMON_CHANNEL_KEYS
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


def _compile_rules(
    topics: tuple[TopicConfig, ...], terms: dict[str, str]
) -> tuple[tuple[CompiledTopic, ...], list[ConfigProblem]]:
    """Compile every topic's rule; each rule that does not compile is one problem, with its position."""
    compiled, problems = [], []
    for topic in topics:
        try:
            compiled.append(compile_topic(topic, terms))
        except RuleError as e:
            # The rule's own message says what was expected; the path already names the topic.
            problems.append(ConfigProblem(f"topics.{topic.name}.rule", "", e.describe(name_topic=False)))
    return tuple(compiled), problems
