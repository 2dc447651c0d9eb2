"""Log lines never carry secrets: URLs lose credentials and query values, configured secrets are masked,
whichever logger wrote them (the HTTP client's own included)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from watcher.logs import JsonFormatter, RedactingFilter, redact, setup_logging


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "GET https://u:p4ss@feeds.example/rss?token=abc&x=1 200",
            "GET https://***@feeds.example/rss?token=***&x=*** 200",
        ),
        (
            "posting to https://hooks.slack.example/services/T0/B0/s3cr3t",
            "posting to https://hooks.slack.example/services/T0/B0/***",
        ),
        ("no url here", "no url here"),
    ],
)
def test_redact(text, expected):
    assert redact(text, secrets=("s3cr3t",)) == expected


def test_every_logger_is_redacted_including_the_http_clients(monkeypatch):
    stream = io.StringIO()
    setup_logging("debug", "text", secrets=("hunter2-password",))
    handler = logging.getLogger().handlers[0]
    handler.stream = stream
    logging.getLogger("httpx").warning('HTTP Request: GET https://feeds.example/a?api_key=k3y "HTTP/1.1 200 OK"')
    logging.getLogger("watcher.alerts").error("login failed with %s", "hunter2-password")
    try:
        raise RuntimeError("while fetching https://user:pw@feeds.example/x")
    except RuntimeError:
        logging.getLogger("watcher.poll").exception("bug")
    out = stream.getvalue()
    for secret in ("k3y", "hunter2-password", "user:pw"):
        assert secret not in out
    assert "https://feeds.example/a?api_key=***" in out


def test_json_lines_carry_extra_fields():
    record = logging.LogRecord("watcher.poll", logging.INFO, "x", 1, "feed %s: ok", ("world",), None)
    record.feed, record.new_entries = "world", 3
    RedactingFilter().filter(record)
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "feed world: ok" and data["feed"] == "world" and data["new_entries"] == 3
    assert data["level"] == "info"


def test_beside_a_progress_bar_info_waits_and_a_warning_clears_the_bar_line(monkeypatch):
    from watcher.logs import beside_a_progress_bar

    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging("info")
    log = logging.getLogger("watcher.test")
    with beside_a_progress_bar(stream):
        stream.write("\rpolling [####----] 50%")
        log.info("feed a: ok")
        log.warning("feed b: error")
    log.info("after the bar")
    text = stream.getvalue()
    assert "feed a: ok" not in text
    assert "50%\r\x1b[K" in text and "WARNING feed b: error" in text  # the bar's line is erased first
    assert text.endswith("INFO    after the bar\n")  # and everything is as before once the bar is gone
