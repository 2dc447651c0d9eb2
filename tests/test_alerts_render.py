"""Rendering is pure: hostile feed text in, harmless text, HTML, Slack blocks and email headers out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from watcher.alerts import slack
from watcher.alerts.digest import RenderSettings, build_message, item_from_delivery
from watcher.alerts.email import build_email
from watcher.alerts.outbox import Batch, plan_batches, retry_delay
from watcher.config import ChannelConfig
from watcher.display import display_text, safe_url, split_marks
from watcher.models import Delivery

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SETTINGS = RenderSettings(
    "Asia/Seoul", (("drone_cooperation", "Joint drone production"), ("troop_deployment", ""), ("arms_transfers", ""))
)
HOSTILE = (
    "<!channel> <@U123> <https://evil.example|click> @here <script>alert(1)</script>"
    "<img src=x onerror=alert(2)>\r\nBcc: victim@example.com\x1b[31m\u202eevil " + "A" * 2000
)


def delivery(
    i: int,
    topic: str = "drone_cooperation",
    *,
    title: str = "",
    url: str = "https://news.example.com/a",
    published: datetime | None = None,
    snippet: str = "Pyongyang and [[Moscow]] build [[drones]]",
) -> Delivery:
    return Delivery(
        id=i,
        article_id=i,
        topic=topic,
        channel="c",
        created_at=NOW,
        title=title or f"Story {i}",
        url=url,
        feeds=("Reuters World", "Yonhap"),
        published_at=published,
        terms=("Moscow", "drones"),
        snippet=snippet,
    )


def message(deliveries, kind="digest"):
    return build_message(kind, "team", [item_from_delivery(d) for d in deliveries], NOW, SETTINGS)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Title\r\nBcc: x@y.z", "Title Bcc: x@y.z"),
        ("a\x00b\x1b[31mc\x7f", "ab[31mc"),
        ("tab\there  and   spaces", "tab here and spaces"),
        ("bidi \u202eevil\u202c and zero\u200bwidth", "bidi evil and zerowidth"),
        ("line\u2028sep\x85next", "line sep next"),
        ("lone \udcff surrogate", "lone \ufffd surrogate"),
        (None, ""),
    ],
)
def test_clean_text(raw, expected):
    assert display_text(raw) == expected


def test_clean_text_truncates_where_displayed():
    text = display_text("word " * 1000, 300)
    assert len(text) <= 300 and text.endswith("…")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://news.example.com/a?b=1&c=2", "https://news.example.com/a?b=1&c=2"),
        ("HTTP://Example.com/x", "HTTP://Example.com/x"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>", None),
        ("file:///etc/passwd", None),
        ("//example.com/x", None),
        ("https://", None),
        ("https://example.com/a\r\nb", None),
        ("https://example.com/a|b<c>", "https://example.com/a%7Cb%3Cc%3E"),
        ("", None),
        (None, None),
    ],
)
def test_safe_url_links_only_http(url, expected):
    assert safe_url(url) == expected


def test_split_marks():
    assert split_marks("a [[drone]] b [[x]]") == (("a ", False), ("drone", True), (" b ", False), ("x", True))
    assert split_marks("unbalanced [[x") == (("unbalanced [[x", False),)


def test_digest_groups_by_topic_in_config_order_newest_first():
    old, new = NOW - timedelta(hours=5), NOW - timedelta(hours=1)
    m = message(
        [
            delivery(1, "troop_deployment", published=old),
            delivery(2, "drone_cooperation", published=old),
            delivery(3, "drone_cooperation", published=new),
            delivery(4, "arms_transfers"),
            delivery(5, "drone_cooperation"),
        ]
    )
    assert [g.topic for g in m.groups] == ["drone_cooperation", "troop_deployment", "arms_transfers"]
    assert [i.delivery_id for i in m.groups[0].items] == [5, 3, 2]  # 5 has no date: found now, the newest
    assert m.subject == "watcher: 5 new items — drone_cooperation (3), troop_deployment (1), arms_transfers (1)"
    # Times in the configured zone; both renderings carry every item.
    assert "published 2026-11-26 17:00 KST" in m.text
    assert m.text.count("Reuters World, Yonhap") == 5 and m.html.count("<mark") == 10
    assert '"Pyongyang and [Moscow] build [drones]"' in m.text


def test_immediate_subject_names_the_one_item():
    m = message([delivery(1, title="Troops \r\nBcc: x@y.z seen")], kind="immediate")
    assert m.subject == "watcher alert: drone_cooperation — Troops Bcc: x@y.z seen"


def test_hostile_title_is_harmless_in_html_and_text():
    m = message([delivery(1, title=HOSTILE, url="javascript:alert(1)", snippet="<b>[[bold]]</b> & <script>")])
    html = m.html
    assert "<script>" not in html and "<img" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;!channel&gt;" in html
    assert "&lt;b&gt;<mark" in html and "&amp; &lt;script&gt;" in html  # marked after escaping
    assert "href=" not in html  # the only link was javascript:
    item = m.items[0]
    assert len(item.title) <= 300 and "\r" not in item.title and "\n" not in item.title and "\x1b" not in item.title
    assert "Bcc: victim" in m.text and "\nBcc:" not in m.text  # shown as text on the title's line, never a header


def test_email_headers_survive_a_hostile_title():
    m = message([delivery(1, title="Северная Корея 북한 " + HOSTILE)], kind="immediate")
    mail = build_email(m, sender="watcher@example.org", recipients=["a@example.org", "b@example.org"])
    raw = mail.as_bytes()
    assert b"\nBcc:" not in raw and b"\r\nBcc:" not in raw
    parsed = message_from_bytes(raw, policy=default_policy)
    assert parsed["Subject"].startswith("watcher alert: drone_cooperation — Северная Корея 북한 <!channel>")
    assert len(parsed["Subject"]) < 260 and parsed["Bcc"] is None
    assert parsed["Message-ID"].endswith("@example.org>") and parsed["Date"]
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert all(line.isascii() for line in raw.split(b"\n")[:12])  # headers encoded (RFC 2047), not raw UTF-8


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("<!channel> hi", "&lt;!channel&gt; hi"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil|click>", "&lt;https:\u200b//evil|click&gt;"),
        ("ping @here and @Channel and @everyone", "ping @\u200bhere and @\u200bChannel and @\u200beveryone"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("see https://evil.example now", "see https:\u200b//evil.example now"),
    ],
)
def test_slack_escape(raw, expected):
    assert slack.escape(raw) == expected


def test_slack_payload_is_inert_and_within_limits():
    m = message(
        [
            delivery(1, title=HOSTILE, url="javascript:x"),
            delivery(2, title="<@U123> ok"),
            delivery(3, snippet="[[" + "x" * 5000 + "]]"),
        ]
    )
    payload = slack.render_payload(m)
    body = json.dumps(payload, ensure_ascii=False)
    for bad in ("<!channel>", "<@U123>", "<https://evil", "@here", "<script", "javascript:"):
        assert bad not in body
    links = [t for b in payload["blocks"] if b["type"] == "section" for t in [b["text"]["text"]] if "<" in t]
    assert all(t.count("<") == 1 and "<https://news.example.com/a|" in t for t in links)
    assert all(len(b["text"]["text"]) <= 3000 for b in payload["blocks"] if b["type"] == "section")
    assert len(payload["blocks"]) <= 50 and payload["text"]


def test_slack_splits_a_large_batch_to_its_limits():
    deliveries = [
        delivery(i, ("drone_cooperation", "troop_deployment", "arms_transfers")[i % 3], title=f"T{i} " + "é" * 250)
        for i in range(1, 131)
    ]
    m = message(deliveries)
    parts = slack.split(m)
    assert len(parts) >= 3
    assert sorted(i for p in parts for i in p.delivery_ids) == list(range(1, 131))
    for n, part in enumerate(parts, start=1):
        payload = slack.render_payload(part)
        assert part.part == (n, len(parts))
        assert len(payload["blocks"]) <= 50
        assert len(json.dumps(payload, ensure_ascii=False)) < 40_000


# --- what is due: pure decisions --------------------------------------------------------------------------------


def _d(i, topic="drone_cooperation", attempts=0, created=NOW):
    return Delivery(id=i, article_id=i, topic=topic, channel="c", created_at=created, attempts=attempts)


DIGEST = ChannelConfig("c", "console", mode="digest")
IMMEDIATE = ChannelConfig("c", "console", mode="immediate")
EMPTY_OK = ChannelConfig("c", "console", mode="digest", send_empty=True)
NO_URGENT = ChannelConfig("c", "console", mode="digest", urgent_immediately=False)
SLOT = NOW - timedelta(minutes=1)
LAST = NOW - timedelta(days=1)


@pytest.mark.parametrize(
    "channel, pending, slot, last, expected",
    [
        (IMMEDIATE, [_d(1), _d(2, "sanctions")], None, None, [("immediate", [1, 2])]),
        (IMMEDIATE, [], None, None, []),
        (DIGEST, [_d(1), _d(2)], None, LAST, []),  # waits for its slot
        (DIGEST, [_d(1), _d(2)], SLOT, LAST, [("digest", [1, 2])]),
        (DIGEST, [_d(1), _d(2, "sanctions")], None, LAST, [("immediate", [2])]),  # urgent goes at once
        (NO_URGENT, [_d(1), _d(2, "sanctions")], None, LAST, []),
        (DIGEST, [_d(1, attempts=2), _d(2)], None, LAST, [("digest", [1])]),  # a failed digest item is retried at once
        (DIGEST, [_d(1, created=LAST - timedelta(hours=1)), _d(2)], None, LAST, [("digest", [1])]),  # missed its digest
        (DIGEST, [], SLOT, LAST, []),  # empty digest skipped
        (EMPTY_OK, [], SLOT, LAST, [("digest", [])]),
    ],
)
def test_plan_batches(channel, pending, slot, last, expected):
    batches = plan_batches(channel, pending, urgent_topics={"sanctions"}, slot=slot, last_digest_at=last)
    assert [(b.kind, [d.id for d in b.deliveries]) for b in batches] == expected
    assert all(isinstance(b, Batch) for b in batches)


@pytest.mark.parametrize(
    "attempts, retry_after, minutes",
    [
        (0, None, 1),
        (1, None, 2),
        (3, None, 8),
        (6, None, 60),
        (40, None, 60),
        (0, timedelta(minutes=2), 2),
        (5, timedelta(seconds=10), 32),
        (0, timedelta(days=30), 24 * 60),
    ],
)
def test_retry_delay(attempts, retry_after, minutes):
    assert retry_delay(attempts, retry_after) == timedelta(minutes=minutes)
