"""The one place the alerts package speaks HTTP (Slack and generic webhooks): one POST, its errors classified.

This is not watcher/fetch.py: that client guards against feed URLs chosen by strangers, while these URLs come
from the operator's config and environment. What is shared is the care: a timeout per read and a total deadline
(httpx timeouts are per read), no proxy from the environment unless the config says so, no redirects, and the
URL never in a log line or an error message, because a Slack webhook URL is a secret (httpx logs full URLs at
INFO, docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from .. import DEFAULT_USER_AGENT
from ..errors import DeliveryError, PermanentDeliveryError
from ..schedules import parse_retry_after

DEFAULT_TIMEOUT_S = 15.0

_SECRET_URLS: set[str] = set()


class _RedactSecretURLs(logging.Filter):
    """httpx logs 'HTTP Request: POST <full url>' at INFO; hide the webhook URLs we post to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRET_URLS and isinstance(record.args, tuple):
            record.args = tuple(
                "<secret url>" if any(secret in str(arg) for secret in _SECRET_URLS) else arg for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactSecretURLs())


async def post_json(
    url: str,
    payload: Any,
    *,
    what: str,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    trust_env: bool = False,
) -> httpx.Response:
    """POST `payload` as JSON. 2xx returns; 429/408/5xx and network trouble raise DeliveryError (with the server's
    Retry-After); other statuses raise PermanentDeliveryError. `what` names the target in messages instead of the URL."""
    _SECRET_URLS.add(url)
    sent_headers = {"user-agent": DEFAULT_USER_AGENT, **(headers or {})}
    try:
        # A total deadline besides the per-read timeout: a server dripping a byte a second never trips the latter.
        async with asyncio.timeout(timeout_s * 2):
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s), trust_env=trust_env, follow_redirects=False
            ) as client:
                response = await client.post(url, json=payload, headers=sent_headers)
    except (TimeoutError, httpx.TimeoutException) as e:
        raise DeliveryError(f"{what}: no answer within {timeout_s:g} s") from e
    except httpx.HTTPError as e:  # connection refused or reset, TLS failure, protocol error
        detail = str(e).replace(url, "<url>") or type(e).__name__
        raise DeliveryError(f"{what}: {type(e).__name__}: {detail}"[:300]) from e
    status = response.status_code
    if 200 <= status < 300:
        return response
    body = " ".join(response.text[:200].split())
    retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    message = f"{what}: HTTP {status}" + (f" ({body})" if body else "")
    if status in (408, 425, 429) or status >= 500:
        raise DeliveryError(message, retry_after=retry_after)
    # 3xx: a webhook URL that redirects is a config problem; 4xx: the server refused this payload for good.
    raise PermanentDeliveryError(message)


class Pacer:
    """At most one request per `interval_s` per key (Slack: one message per second per webhook)."""

    def __init__(
        self,
        interval_s: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, key: str) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            delay = self._next.get(key, 0.0) - self._clock()
            if delay > 0:
                await self._sleep(delay)
            self._next[key] = self._clock() + self.interval_s
