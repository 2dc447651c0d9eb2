"""Slack incoming webhooks: Block Kit with a plain-text fallback, split to Slack's limits, feed text defused.

Slack reads `<...>` as mentions and links (`<!channel>`, `<@U123>`, `<https://evil|click>`) and notifies for
`@here`-style words, so feed text is escaped (& < > -> &amp; &lt; &gt;, as Slack's "Formatting text" guide asks)
and those words get a zero-width space; only the article's own http(s) URL becomes a link.
Limits (Slack API reference, "Blocks"): 50 blocks per message, 3000 characters per section text, 150 per header;
messages longer than 40,000 characters are truncated, so a part stays well under that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config_reader import Table, resolve_secret
from ..errors import ConfigError, DeliveryError
from .channel import ChannelContext, ChannelOptions, ChannelType
from .digest import AlertItem, Message, format_time, plural, subset
from .http import DEFAULT_TIMEOUT_S, Pacer, post_json

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_PAYLOAD_TEXT = 30_000  # our budget per message, under Slack's 40,000
MAX_LINK_URL = 1500

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BROADCAST = re.compile(r"(@)(here|channel|everyone)\b", re.IGNORECASE)
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):(?=//)", re.IGNORECASE)
_ZWSP = "\u200b"


def escape(text: str, budget: int | None = None) -> str:
    """Feed text as inert Slack mrkdwn, at most `budget` characters after escaping (an ellipsis marks a cut)."""
    text = _BROADCAST.sub(lambda m: m.group(1) + _ZWSP + m.group(2), text)
    text = _SCHEME.sub(lambda m: m.group(1) + ":" + _ZWSP, text)  # no auto-linked URLs from feed text
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _ESCAPES.get(ch, ch)
        if budget is not None and used + len(piece) > budget - 1:
            out.append("…")
            break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def item_text(item: AlertItem, timezone: str) -> str:
    """One item as a section's mrkdwn, never more than MAX_SECTION characters."""
    url = item.url.replace("&", "&amp;") if item.url else None
    title = escape(item.title, 700).replace("*", "")
    head = f"*<{url}|{title}>*" if url and len(url) <= MAX_LINK_URL else f"*{title}*"
    when = format_time(item.published_at or item.found_at, timezone)
    meta = escape(", ".join(item.feeds[:5]) + (f" +{len(item.feeds) - 5}" if len(item.feeds) > 5 else ""), 300)
    if when:
        meta = f"{meta} · {'published' if item.published_at else 'found'} {when}" if meta else when
    lines = [head, f"_{meta}_" if meta else ""]
    if len(item.sources) > 1:
        lines.append(_sources(item, timezone))
    if item.page_url and len(item.page_url) <= MAX_LINK_URL:
        lines.append(f"<{item.page_url.replace('&', '&amp;')}|why it matched>")
    if item.terms:
        lines.append("terms: " + escape(", ".join(item.terms), 300))
    used = sum(len(line) + 1 for line in lines)
    if item.snippet:
        lines.append(">" + _snippet(item, MAX_SECTION - used - 2))
    return "\n".join(line for line in lines if line)[:MAX_SECTION]


def _sources(item: AlertItem, timezone: str) -> str:
    """'*5 sources* · also reported by <link|Reuters> 14:02, ...': bounded, whatever the number of sources."""
    shown = []
    for src in item.also_reported_by[:8]:
        name = escape(src.feed, 60) or "?"
        url = src.url.replace("&", "&amp;") if src.url else None
        link = f"<{url}|{name}>" if url and len(url) <= 300 else name  # a long link would not fit
        shown.append(f"{link} {format_time(src.at, timezone)}".strip())
    more = len(item.also_reported_by) - len(shown)
    earlier = " (alerted earlier)" if item.alerted_before else ""
    return (
        f"*{len(item.sources)} sources*{earlier} · also reported by "
        + ", ".join(shown)
        + (f" +{more}" if more > 0 else "")
    )[:1200]


def _snippet(item: AlertItem, budget: int) -> str:
    out, used = [], 0
    for text, marked in item.segments:
        if used >= budget - 2:
            break
        if marked:
            piece = "*" + escape(text.replace("*", ""), budget - used - 2) + "*"
        else:
            piece = escape(text, budget - used)
        out.append(piece)
        used += len(piece)
    return "".join(out)


def _topic_text(topic: str, description: str, count: int) -> str:
    """An analyst reads the topic's description; its code name follows, for the config."""
    if description:
        return f"*{escape(description, 400)}* ({count}) · {escape(topic, 200)}"
    return f"*{escape(topic, 200)}* ({count})"


def _header(message: Message) -> str:
    count = len(message.items)
    word = {"immediate": "alert", "test": "test message"}.get(message.kind, "digest")
    text = f"watcher {word}: {count} new {plural(count, 'item')}"
    if message.part[1] > 1:
        text += f" ({message.part[0]}/{message.part[1]})"
    return text[:MAX_HEADER]


def render_payload(message: Message) -> dict[str, Any]:
    """The JSON body for one webhook post. `text` is the notification and fallback; Slack reads it as mrkdwn too."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": _header(message)}}]
    if not message.groups:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "No new items."}})
    for group in message.groups:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _topic_text(group.topic, group.description, len(group.items))},
            }
        )
        for item in group.items:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": item_text(item, message.timezone)}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"watcher · channel {escape(message.channel, 100)}"}],
        }
    )
    return {"text": escape(message.subject, 500), "blocks": blocks}


_LINK = re.compile(r"<(https?://[^|>]*)\|([^>]*)>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_ITALIC = re.compile(r"(?<!\w)_([^\n]+?)_(?!\w)")


def plain_rendering(payload: dict[str, Any]) -> str:
    """Roughly what Slack shows for `payload`, as plain text: for `watcher digest preview --format slack`."""
    lines: list[str] = []
    for block in payload.get("blocks", []):
        texts = [block["text"]["text"]] if "text" in block else [e.get("text", "") for e in block.get("elements", [])]
        for text in texts:
            text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
            text = _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text))
            for escaped, raw in (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"), (_ZWSP, "")):
                text = text.replace(escaped, raw)
            lines.extend(("  " + line[1:]) if line.startswith(">") else line for line in text.splitlines())
        lines.append("")
    return "\n".join(lines)


def split(message: Message) -> list[Message]:
    """Cut a message into parts that each fit in one Slack post (blocks and characters), keeping item order."""
    parts: list[list[AlertItem]] = []
    current: list[AlertItem] = []
    blocks, chars = 2, 1000  # header + context blocks; the fallback text and the header
    topics: set[str] = set()
    for item in message.items:
        text = len(item_text(item, message.timezone))
        new_topic = item.topic not in topics
        if current and (blocks + 1 + new_topic > MAX_BLOCKS or chars + text + 600 * new_topic > MAX_PAYLOAD_TEXT):
            parts.append(current)
            current, blocks, chars, topics, new_topic = [], 2, 1000, set(), True
        current.append(item)
        topics.add(item.topic)
        blocks += 1 + new_topic
        chars += text + 600 * new_topic  # a topic line: name and description, at most ~600 escaped
    parts.append(current)
    if len(parts) == 1:
        return [message]
    return [subset(message, items, (n, len(parts))) for n, items in enumerate(parts, start=1)]


class SlackChannel:
    """One Slack incoming webhook; the URL is read from the environment when a message is sent."""

    def __init__(
        self,
        name: str,
        *,
        webhook_url_env: str,
        pacer: Pacer | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        trust_env: bool = False,
    ):
        self.name = name
        self.webhook_url_env = webhook_url_env
        self.pacer = pacer or Pacer(1.0)
        self.timeout_s = timeout_s
        self.trust_env = trust_env

    def split(self, message: Message) -> Sequence[Message]:
        return split(message)

    async def send(self, message: Message) -> None:
        try:
            url = resolve_secret(self.webhook_url_env, what=f"the Slack webhook URL of channel {self.name!r}")
        except ConfigError as e:
            # Retryable: once the variable is set and the daemon restarted, the queued alerts go out.
            raise DeliveryError(
                f"slack channel {self.name!r}: environment variable {self.webhook_url_env} is not set"
            ) from e
        payload = render_payload(message)
        await self.pacer.wait(url)
        await post_json(
            url, payload, what=f"slack channel {self.name!r}", timeout_s=self.timeout_s, trust_env=self.trust_env
        )


@dataclass(frozen=True, slots=True)
class SlackOptions(ChannelOptions):
    webhook_url_env: str = ""  # the variable holding the webhook URL: the URL is a secret

    def secret_envs(self) -> dict[str, str]:
        return {"webhook_url_env": self.webhook_url_env} if self.webhook_url_env else {}


def _read_options(t: Table) -> SlackOptions:
    options = SlackOptions(webhook_url_env=t.text("webhook_url_env", ""))
    if not options.webhook_url_env:
        t.missing("webhook_url_env", "a value: slack channels need it (the variable that holds the webhook URL)")
    return options


def _build(name: str, o: SlackOptions, context: ChannelContext) -> SlackChannel:
    return SlackChannel(name, webhook_url_env=o.webhook_url_env, pacer=context.pacer, trust_env=context.use_env_proxy)


SLACK = ChannelType("slack", SlackOptions, _read_options, _build)
