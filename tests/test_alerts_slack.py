"""Slack through a real local HTTP server standing in for the incoming webhook: 429, 5xx, hangs, 4xx, limits."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta

import pytest

from tests.helpers.alerts_support import (
    T0,
    add_articles,
    article,
    cli_obj,
    make_config,
    open_store,
    statuses,
)
from tests.helpers.webhook_server import Endpoint
from watcher.alerts.http import Pacer
from watcher.alerts.outbox import Dispatcher
from watcher.alerts.slack import SlackChannel
from watcher.cli.alerts import alerts
from watcher.schedules import parse_retry_after

HOSTILE = (
    "<!channel> <!here> <@U123> <https://evil.example|click here> @here hello @channel & <script>x</script> "
    + "W" * 2000
)


@pytest.fixture
def hook(site, monkeypatch):
    endpoint = Endpoint(site, "/services/T000/B000/XXXX")
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", endpoint.url)
    return endpoint


def setup(tmp_path, *, timeout_s=5.0):
    config = make_config({"team": {"type": "slack", "mode": "immediate", "webhook_url_env": "TEST_SLACK_WEBHOOK"}})
    store = open_store(tmp_path, config)
    channel = SlackChannel("team", webhook_url_env="TEST_SLACK_WEBHOOK", pacer=Pacer(0), timeout_s=timeout_s)
    return config, store, Dispatcher(config, store, {"team": channel})


async def test_429_with_retry_after_then_200_delivers_once_after_the_wait(tmp_path, hook):
    config, store, dispatcher = setup(tmp_path)
    hook.then(429, "rate_limited", headers={"retry-after": "120"}).then(200, "ok")
    add_articles(store, config, [article("drone_cooperation") for _ in range(3)], T0)
    report = await dispatcher.run(T0)
    assert report.retried == 3 and report.outcomes[0].retry_at == T0 + timedelta(seconds=120)
    await dispatcher.run(T0 + timedelta(seconds=60))
    assert len(hook.requests) == 1  # Retry-After obeyed: the 1-minute back-off would have tried already
    await dispatcher.run(T0 + timedelta(seconds=120))
    await dispatcher.run(T0 + timedelta(seconds=150))
    assert len(hook.payloads) == 2 and hook.payloads[0] == hook.payloads[1]
    assert statuses(store) == {"sent": 3}


@pytest.mark.parametrize(
    "answer", [{"status": 500, "body": "server error"}, {"status": 503, "body": ""}, {"hang": True}]
)
async def test_5xx_and_hangs_are_retried(tmp_path, hook, answer):
    config, store, dispatcher = setup(tmp_path, timeout_s=0.3)
    hook.then(**answer)
    add_articles(store, config, [article("troop_deployment")], T0)
    report = await dispatcher.run(T0)
    assert report.retried == 1 and statuses(store) == {"pending": 1}
    assert hook.url not in report.outcomes[0].error  # the webhook URL is a secret
    await dispatcher.run(T0 + timedelta(minutes=1))
    assert statuses(store) == {"sent": 1} and len(hook.requests) == 2


async def test_4xx_goes_to_dead_letter_and_alerts_retry_requeues_it(tmp_path, hook):
    from click.testing import CliRunner

    config, store, dispatcher = setup(tmp_path)
    hook.then(404, "no_service")
    add_articles(store, config, [article("drone_cooperation"), article("arms_transfers")], T0)
    report = await dispatcher.run(T0)
    assert report.dead == 2 and "HTTP 404 (no_service)" in report.outcomes[0].error
    await dispatcher.run(T0 + timedelta(hours=2))
    assert len(hook.requests) == 1 and statuses(store) == {"dead": 2}
    ids = [str(r["id"]) for r in store.list_deliveries(status="dead")]
    # The CLI runs its own event loop: call it from a thread, as a separate `watcher` process would.
    result = await asyncio.to_thread(
        CliRunner().invoke, alerts, ["retry", "--send", ids[0]], obj=cli_obj(config, store)
    )
    assert result.exit_code == 0, result.output
    assert "1 failed alert(s) queued again" in result.output and "team: immediate of 1 item(s): sent" in result.output
    assert statuses(store) == {"sent": 1, "dead": 1}


async def test_hostile_feed_text_cannot_mention_or_link(tmp_path, hook):
    config, store, dispatcher = setup(tmp_path)
    add_articles(
        store,
        config,
        [
            article("drone_cooperation", title=HOSTILE, snippet="ping <!everyone> and [[<@U999>]] " + "x" * 4000),
            article("drone_cooperation", title="javascript link", url="javascript:alert(1)"),
            article("troop_deployment", title="Troops & tanks"),
        ],
        T0,
    )
    await dispatcher.run(T0)
    (payload,) = hook.payloads
    raw = hook.requests[0].body.decode()
    texts = [payload["text"]] + [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
    for text in texts:
        for bad in (
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "<@U123>",
            "<@U999>",
            "<https://evil",
            "@here",
            "@channel",
            "<script",
        ):
            assert bad not in text
        assert len(text) <= 3000
        # The only links are the articles' own https URLs.
        assert all(link.startswith("<https://news.example.com/story/") for link in re.findall(r"<[^>]*>", text))
    assert "javascript:" not in raw
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;" in joined and "&lt;@U123&gt;" in joined and "Troops &amp; tanks" in joined
    assert "*&lt;@U999&gt;*" in joined  # a matched term: bold, still inert
    assert len(payload["blocks"]) <= 50


async def test_a_large_batch_is_split_into_several_posts_each_sent_once(tmp_path, hook):
    config, store, dispatcher = setup(tmp_path)
    add_articles(store, config, [article(("drone_cooperation", "troop_deployment")[i % 2]) for i in range(120)], T0)
    report = await dispatcher.run(T0)
    assert report.sent == 120 and report.messages == len(hook.payloads) >= 3
    assert all(len(p["blocks"]) <= 50 for p in hook.payloads)
    await dispatcher.run(T0 + timedelta(minutes=5))
    assert report.messages == len(hook.payloads) and statuses(store) == {"sent": 120}


async def test_pacer_allows_one_message_per_second_per_webhook():
    now = [100.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 3))
        now[0] += seconds

    pacer = Pacer(1.0, clock=lambda: now[0], sleep=sleep)
    await pacer.wait("a")
    await pacer.wait("b")  # another webhook: not held back
    now[0] += 0.25
    await pacer.wait("a")
    await pacer.wait("a")
    assert sleeps == [0.75, 1.0]


async def test_slack_url_never_reaches_the_logs(tmp_path, hook, caplog):
    config, store, dispatcher = setup(tmp_path)
    add_articles(store, config, [article("drone_cooperation")], T0)
    # Even with httpx's request log switched on (fetch.py and logs.py turn it down), the URL stays out.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        await dispatcher.run(T0)
    assert statuses(store) == {"sent": 1}
    assert "/services/T000/B000/XXXX" not in caplog.text and "HTTP Request: POST <secret url>" in caplog.text


async def test_unset_webhook_variable_is_retried_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_SLACK_WEBHOOK", raising=False)
    config, store, dispatcher = setup(tmp_path)
    add_articles(store, config, [article("drone_cooperation")], T0)
    report = await dispatcher.run(T0)
    assert report.retried == 1 and "TEST_SLACK_WEBHOOK is not set" in report.outcomes[0].error


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("120", 120),
        ("0", 0),
        ("99999999", 86400),
        ("Thu, 26 Nov 2026 09:05:00 GMT", 300),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_seconds_or_date_clamped_to_a_day(value, seconds):
    result = parse_retry_after(value, T0)
    assert result == (None if seconds is None else timedelta(seconds=seconds))
