"""Logging set-up: one line per event, as text for people or JSON for machines, with secrets redacted.

Redaction is a filter on the handlers, so it covers every logger, the HTTP client's own included: URLs lose
their userinfo and query values, and any configured secret value is replaced by `***`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_URL_SECRETS = re.compile(r"(?P<scheme>https?://)(?P<userinfo>[^/\s@]+@)?(?P<rest>[^\s?#]*)(?P<query>\?[^\s#]*)?")
_QUERY_VALUE = re.compile(r"=([^&]*)")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    def clean_url(m: re.Match[str]) -> str:
        query = m.group("query") or ""
        if query:
            query = _QUERY_VALUE.sub(lambda q: "=***" if q.group(1) else "=", query)
        return f"{m.group('scheme')}{'***@' if m.group('userinfo') else ''}{m.group('rest')}{query}"

    text = _URL_SECRETS.sub(clean_url, text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            data["traceback"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP client logs every request with its full URL at INFO; ours are logged, redacted, per feed.
    for noisy in ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _ClearLineFirst(logging.Formatter):
    """Starts each line by erasing the terminal line, where a progress bar is being drawn."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return "\r\x1b[K" + self.inner.format(record)


@contextmanager
def beside_a_progress_bar(stream: TextIO) -> Iterator[None]:
    """While a progress bar is drawn on `stream`, keep the log from writing into it.

    The bar redraws its line with a carriage return and no newline, so a log line written meanwhile lands in the
    middle of it (`polling [####---] 64%2026-12-06 22:18:30 INFO feed ...`). So during the bar, INFO lines are
    left out (the caller prints a summary of them after), and a warning or error first erases the bar's line; the
    bar draws itself again below it at its next step.
    """
    root = logging.getLogger()
    saved = [(h, h.level, h.formatter) for h in root.handlers]
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
            handler.setLevel(max(handler.level, logging.WARNING))
            handler.setFormatter(_ClearLineFirst(handler.formatter))
    try:
        yield
    finally:
        for handler, level, formatter in saved:
            handler.setLevel(level)
            handler.setFormatter(formatter)
