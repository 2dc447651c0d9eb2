"""Logging set-up: one line per event, as text for people or JSON for machines, with secrets redacted.

Redaction is a filter on the handlers, so it covers every logger, the HTTP client's own included: URLs lose
their userinfo and query values, and any configured secret value is replaced by `***`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

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
