"""config.toml -> Config: frozen values, every problem reported at once with file, key path and expectation.

The file is read with the standard library's tomllib. Each table is read through a `Table`, which records a
problem instead of raising, so a user with five typos sees five lines, not one per run. Unknown keys are
problems too: a misspelt key silently ignored is the commonest config bug of feed tools.

Secrets never live in the file: a key ending in `_env` names the environment variable that holds the
secret, and is resolved when the secret is used (so `watcher check` can warn about an unset variable
without the daemon refusing to start on a channel nobody uses yet).
"""

from __future__ import annotations

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

from .config_reader import Table, parse_duration, resolve_secret
from .config_sections import (
    ChannelConfig,
    ExtractSettings,
    FeedConfig,
    FetchSettings,
    ScheduleSettings,
    StoryConfig,
    read_channels,
    read_extract,
    read_feeds,
    read_fetch,
    read_schedule,
    read_stories,
    read_terms,
    read_topics,
)
from .errors import ConfigError, ConfigProblem, RuleError
from .rules import CompiledTopic, TopicConfig, compile_topic

__all__ = [
    "ChannelConfig",
    "Config",
    "ExtractSettings",
    "FeedConfig",
    "FetchSettings",
    "ScheduleSettings",
    "StoryConfig",
    "TopicConfig",
    "config_from_dict",
    "load_config",
    "parse_duration",
    "resolve_secret",
]


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
    fetch: FetchSettings = field(default_factory=FetchSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    stories: StoryConfig = field(default_factory=StoryConfig)
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

    fetch = read_fetch(top.table("fetch"))
    schedule = read_schedule(top.table("schedule"))
    extract = read_extract(top.table("extract"))
    stories = read_stories(top.table("stories"))
    feeds = read_feeds(top, problems)
    terms = read_terms(top.table("terms"))
    topics = read_topics(top.table("topics"))
    channels = read_channels(top.table("channels"), {t.name for t in topics})
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
