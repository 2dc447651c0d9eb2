"""Generic webhook: the items of a message as JSON, POSTed to a URL, for other tools (n8n, Zapier, a script).

The body (version 1):
    {"source": "watcher", "version": 1, "kind": "digest" | "immediate" | "test", "channel": "...",
     "generated_at": "2026-11-26T15:09:10Z", "part": [1, 1], "subject": "...",
     "items": [{"id": 17, "topic": "...", "title": "...", "url": "https://..." | null, "feeds": ["..."],
                "published_at": "...Z" | null, "found_at": "...Z", "terms": ["..."], "snippet": "... [[term]] ..."}]}
`Idempotency-Key` is the same for a resend of the same items, so a receiver can drop the duplicate a crash in
flight may cause. Same retry rules as Slack: 408/429/5xx and network errors are retried, other 4xx are dead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config_reader import Table, resolve_secret
from ..errors import ConfigError, DeliveryError
from .channel import ChannelContext, ChannelOptions, ChannelType
from .digest import Message, split_by_count
from .http import DEFAULT_TIMEOUT_S, post_json

MAX_ITEMS_PER_POST = 100


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def render_body(message: Message) -> dict[str, Any]:
    return {
        "source": "watcher",
        "version": 1,
        "kind": message.kind,
        "channel": message.channel,
        "generated_at": _iso(message.created_at),
        "part": list(message.part),
        "subject": message.subject,
        "items": [
            {
                "id": item.delivery_id,
                "topic": item.topic,
                "title": item.title,
                "url": item.url,
                "feeds": list(item.feeds),
                "published_at": _iso(item.published_at),
                "found_at": _iso(item.found_at),
                "terms": list(item.terms),
                "snippet": item.snippet,
            }
            for item in message.items
        ],
    }


def idempotency_key(message: Message) -> str:
    ids = ",".join(str(i) for i in sorted(message.delivery_ids)) or _iso(message.created_at) or ""
    return hashlib.sha256(f"{message.channel}:{message.kind}:{ids}".encode()).hexdigest()[:32]


class WebhookChannel:
    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        url_env: str | None = None,
        headers_env: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        trust_env: bool = False,
    ):
        self.name = name
        self.url = url
        self.url_env = url_env
        self.headers_env = headers_env
        self.timeout_s = timeout_s
        self.trust_env = trust_env

    def split(self, message: Message) -> Sequence[Message]:
        return split_by_count(message, MAX_ITEMS_PER_POST)

    def _secret(self, env: str, what: str) -> str:
        try:
            return resolve_secret(env, what=what)
        except ConfigError as e:
            raise DeliveryError(f"webhook channel {self.name!r}: environment variable {env} is not set") from e

    def _headers(self) -> dict[str, str]:
        """Extra headers (an Authorization token, say) from an environment variable holding a JSON object."""
        if not self.headers_env:
            return {}
        raw = self._secret(self.headers_env, "extra webhook headers as a JSON object")
        try:
            headers = json.loads(raw)
        except ValueError as e:
            raise DeliveryError(f"webhook channel {self.name!r}: {self.headers_env} is not a JSON object") from e
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise DeliveryError(f"webhook channel {self.name!r}: {self.headers_env} is not a JSON object of strings")
        return {str(k): v for k, v in headers.items()}

    async def send(self, message: Message) -> None:
        url = self.url or self._secret(self.url_env or "", f"the webhook URL of channel {self.name!r}")
        headers = {**self._headers(), "idempotency-key": idempotency_key(message)}
        await post_json(
            url,
            render_body(message),
            what=f"webhook channel {self.name!r}",
            headers=headers,
            timeout_s=self.timeout_s,
            trust_env=self.trust_env,
        )


@dataclass(frozen=True, slots=True)
class WebhookOptions(ChannelOptions):
    url: str = ""  # a URL that is no secret; else url_env names the variable holding it
    url_env: str = ""
    headers_env: str = ""  # a variable holding extra headers as a JSON object (an Authorization token)

    def secret_envs(self) -> dict[str, str]:
        return {key: env for key, env in (("url_env", self.url_env), ("headers_env", self.headers_env)) if env}


def _read_options(t: Table) -> WebhookOptions:
    options = WebhookOptions(
        url=t.text("url", ""), url_env=t.text("url_env", ""), headers_env=t.text("headers_env", "")
    )
    if not (options.url or options.url_env):
        t.missing("url", "url or url_env: webhook channels need one", "neither")
    return options


def _build(name: str, o: WebhookOptions, context: ChannelContext) -> WebhookChannel:
    return WebhookChannel(
        name, url=o.url or None, url_env=o.url_env or None, headers_env=o.headers_env, trust_env=context.use_env_proxy
    )


WEBHOOK = ChannelType("webhook", WebhookOptions, _read_options, _build)
