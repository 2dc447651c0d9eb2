"""Config loading: durations, defaults, unknown keys, and every error at once with its key path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watcher.config import load_config, parse_duration
from watcher.errors import ConfigError

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
        (" 1h 5m ", timedelta(minutes=65)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "m15", "15 minutes", "1x", "-5m", "5m3"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_default_config_loads_and_compiles_its_rules():
    config = load_config(ROOT / "config.toml")
    assert 20 <= len(config.feeds) <= 30
    assert {t.name for t in config.topics} == {"drone_cooperation", "troop_deployment"}
    assert all(f.url.startswith(("http://", "https://")) for f in config.feeds)
    assert {c.type for c in config.channels} <= {"console", "file"}  # zero setup: no secrets needed


def test_default_feeds_follow_what_the_outlets_really_serve():
    feeds = {f.name: f for f in load_config(ROOT / "config.toml").feeds}
    assert feeds["The Hankyoreh (English)"].url.endswith("/rss/english_edition/")  # /rss/ is the Korean feed
    assert not any("rss.cnn.com" in f.url for f in feeds.values())  # frozen with 2023 items since 2024
    assert "Sky News World" in feeds
    # Full text in the feed and a Cloudflare challenge on the pages; paywalled teasers: no page fetches.
    assert {name for name, f in feeds.items() if not f.extract} == {"38 North", "NK News", "NYT World"}
    assert len(feeds) == 28


def test_packaged_starter_config_is_the_default_config():
    packaged = (ROOT / "watcher" / "default_config.toml").read_text(encoding="utf-8")
    assert packaged == (ROOT / "config.toml").read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
[[feeds]]
name = "one"
url = "https://example.org/feed.xml"

[topics.t]
rule = "drone"
"""


def test_minimal_config_gets_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.schedule.interval == timedelta(minutes=15)
    assert config.fetch.per_host == 2
    assert config.fetch.max_feed_bytes == 10 * 2**20
    assert config.feeds[0].extract is True
    assert config.channels == ()


def test_every_error_is_reported_at_once_with_its_key_path(tmp_path):
    path = write(
        tmp_path,
        """
[watcher]
timezone = "Mars/Olympus"
log_levle = "debug"

[schedule]
interval = "fifteen minutes"

[fetch]
per_host = 0
concurrency = true

[[feeds]]
name = "one"
url = "ftp://example.org/feed"

[[feeds]]
name = "one"
url = "https://example.org/b"
extract = "yes"

[[feeds]]
url = "https://example.org/c"

[topics.t]
rule = "drone"
urgent = 1

[channels.mail]
type = "email"
port = "587"
topics = ["t", "nope"]
schedule = "every other tuesday"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    paths = {p.path for p in error.problems}
    assert paths >= {
        "watcher.timezone",
        "watcher.log_levle",
        "schedule.interval",
        "fetch.per_host",
        "fetch.concurrency",
        "feeds[0].url",
        "feeds[1].name",
        "feeds[1].extract",
        "feeds[2].name",
        "topics.t.urgent",
        "channels.mail.port",
        "channels.mail.topics[1]",
        "channels.mail.schedule",
        "channels.mail.host",
        "channels.mail.from",
        "channels.mail.to",
    }
    text = str(error)
    assert str(path) in text.splitlines()[0]
    assert "feeds[0].url: expected an http:// or https:// URL, found 'ftp://example.org/feed'" in text
    assert "watcher.log_levle: expected a known key" in text  # the typo is named, with the keys that exist
    assert "schedule.interval: expected a duration" in text and "'fifteen minutes'" in text


def test_invalid_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "[watcher\ndatabase = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "line 1" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="readable file"):
        load_config(tmp_path / "absent.toml")


def test_bad_rules_are_config_errors_with_topic_and_position(tmp_path):
    path = write(tmp_path, MINIMAL + '\n[topics.broken]\nrule = "drone AND (russia"\n\n[topics.other]\nrule = "(("\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    paths = [p.path for p in info.value.problems]
    assert paths == ["topics.broken.rule", "topics.other.rule"]  # both, not only the first
    assert "position" in str(info.value)


def test_routes_follow_channel_topics(tmp_path):
    path = write(
        tmp_path,
        MINIMAL
        + """
[topics.u]
rule = "troops"

[channels.all]
type = "console"

[channels.only_u]
type = "file"
topics = ["u"]
""",
    )
    assert load_config(path).routes() == {"t": ("all",), "u": ("all", "only_u")}


def test_secrets_are_named_not_written(tmp_path, monkeypatch):
    from watcher.config import resolve_secret

    monkeypatch.setenv("MY_SMTP_PASSWORD", "s3cret")
    assert resolve_secret("MY_SMTP_PASSWORD", what="the SMTP password") == "s3cret"
    monkeypatch.delenv("MY_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="MY_SMTP_PASSWORD"):
        resolve_secret("MY_SMTP_PASSWORD", what="the SMTP password")
