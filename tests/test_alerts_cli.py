"""`watcher digest ...` and `watcher alerts ...` through click's runner, on a real Store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner

from tests.helpers.alerts_support import (
    add_articles,
    article,
    cli_obj,
    make_config,
    open_store,
    statuses,
)
from watcher.cli.alerts import alerts, digest

CHANNELS = {
    "out": {"type": "console", "mode": "digest", "schedule": "daily at 07:00", "topics": ["drone_cooperation"]},
    "broken": {"type": "webhook", "mode": "immediate", "url": "http://127.0.0.1:9/nothing-listens"},
}


@pytest.fixture
def env(tmp_path):
    config = make_config(CHANNELS)
    now = datetime.now(UTC).replace(microsecond=0)
    store = open_store(tmp_path, config, now)
    add_articles(
        store,
        config,
        [article("drone_cooperation", title="Drones <b>bold</b>"), article("troop_deployment")],
        now - timedelta(hours=1),
    )
    add_articles(store, config, [article("arms_transfers", title="Old news")], now - timedelta(days=3))
    return config, store, cli_obj(config, store)


def run(group, args, obj):
    return CliRunner().invoke(group, args, obj=obj, catch_exceptions=False)


def test_preview_since_shows_recent_matches_as_text_and_writes_html(env, tmp_path):
    _, store, obj = env
    result = run(digest, ["preview", "--since", "24h"], obj)
    assert result.exit_code == 0
    assert "watcher: 2 new items — drone_cooperation (1), troop_deployment (1)" in result.output
    assert "Old news" not in result.output and "Drones <b>bold</b>" in result.output
    html_file = tmp_path / "preview.html"
    result = run(digest, ["preview", "--channel", "out", "--since", "7d", "--html", str(html_file)], obj)
    assert "drone_cooperation (1)" in result.output and "troop_deployment" not in result.output
    assert "Drones &lt;b&gt;bold&lt;/b&gt;" in html_file.read_text()
    assert statuses(store) == {"pending": 4}  # out: drone_cooperation; broken: all three topics


def _titles_in(text: str, candidates: list[str]) -> list[str]:
    return [t for t in candidates if t in text]


def test_preview_is_exactly_the_next_digest_send_sends(tmp_path):
    channels = {"out": {"type": "console", "mode": "digest", "schedule": "daily at 07:00"}}
    config = make_config(channels)
    now = datetime.now(UTC).replace(microsecond=0)
    store = open_store(tmp_path, config, now)
    obj = cli_obj(config, store)
    add_articles(store, config, [article("drone_cooperation", title="Already sent")], now - timedelta(days=2))
    store.mark_sent([r["id"] for r in store.list_deliveries()], now - timedelta(days=1))
    add_articles(store, config, [article("drone_cooperation", title="Waiting for a retry")], now - timedelta(hours=3))
    waiting = next(r["id"] for r in store.list_deliveries() if r["status"] == "pending")
    store.mark_retry([waiting], "421 try later", now + timedelta(minutes=30))
    add_articles(
        store,
        config,
        [article("drone_cooperation", title="Due one"), article("troop_deployment", title="Due two")],
        now - timedelta(hours=1),
    )
    titles = ["Already sent", "Waiting for a retry", "Due one", "Due two"]

    preview = run(digest, ["preview"], obj)
    assert preview.exit_code == 0
    assert _titles_in(preview.output, titles) == ["Due one", "Due two"]
    assert "2 new items" in preview.output
    sent = run(digest, ["send", "--channel", "out"], obj)
    assert "out: digest of 2 item(s): sent" in sent.output
    assert _titles_in(sent.output, titles) == ["Due one", "Due two"]  # the console channel prints what it sends
    assert _titles_in(run(digest, ["preview"], obj).output, titles) == []  # nothing is due any more


def test_preview_in_slack_format_prints_block_kit_and_how_it_reads(env):
    _, store, obj = env
    result = run(digest, ["preview", "--channel", "out", "--format", "slack"], obj)
    assert result.exit_code == 0
    payload_text, plain = result.output.split("--- as it reads in Slack ---\n")
    payload = json.loads(payload_text)
    assert payload["blocks"][0]["type"] == "header"
    assert any("Drones &lt;b&gt;bold&lt;/b&gt;" in json.dumps(b) for b in payload["blocks"])
    assert "Drones <b>bold</b>" in plain and "&lt;" not in plain and "*" not in plain
    assert "Joint drone production (1) · drone_cooperation" in plain  # the topic by its description first
    assert statuses(store) == {"pending": 4}


def test_preview_rejects_a_bad_duration_and_an_unknown_channel(env):
    _, _, obj = env
    assert "--since" in run(digest, ["preview", "--since", "soon"], obj).output
    result = run(digest, ["preview", "--channel", "nope"], obj)
    assert result.exit_code == 2 and "configured: out, broken" in result.output


def test_digest_send_sends_now_and_only_once(env):
    _, _, obj = env
    result = run(digest, ["send"], obj)
    assert result.exit_code == 0 and "out: digest of 1 item(s): sent" in result.output
    assert "out: nothing pending" in run(digest, ["send", "--channel", "out"], obj).output


def test_alerts_test_reports_success_and_failure(env):
    _, store, obj = env
    ok = run(alerts, ["test", "--channel", "out"], obj)
    assert ok.exit_code == 0 and "out: test message sent" in ok.output
    failed = run(alerts, ["test", "--channel", "broken"], obj)
    assert (
        failed.exit_code == 1 and "broken: test message failed: webhook channel 'broken': ConnectError" in failed.output
    )
    assert statuses(store) == {"pending": 4}  # the outbox was not touched


def test_alerts_list_filters_and_prints_json(env):
    _, store, obj = env
    ids = [r["id"] for r in store.list_deliveries()]
    store.mark_dead(ids[:1], "HTTP 404 (no_service)")
    table = run(alerts, ["list"], obj).output
    assert table.splitlines()[0].split() == [
        "id",
        "channel",
        "topic",
        "status",
        "attempts",
        "when",
        "title",
        "last_error",
    ]
    assert len(table.splitlines()) == 5
    rows = [json.loads(line) for line in run(alerts, ["list", "--failed", "--json"], obj).output.splitlines()]
    assert [(r["id"], r["status"], r["last_error"]) for r in rows] == [(ids[0], "dead", "HTTP 404 (no_service)")]
    assert run(alerts, ["list", "--pending", "--channel", "out"], obj).output.count("pending") == 1
    assert "no alerts with status sent" in run(alerts, ["list", "--sent"], obj).output


def test_alerts_retry_requeues_dead_letters(env):
    _, store, obj = env
    ids = [r["id"] for r in store.list_deliveries()]
    store.mark_dead(ids, "550 rejected")
    assert "1 failed alert(s) queued again" in run(alerts, ["retry", str(ids[0])], obj).output
    assert "2 failed alert(s) queued again" in run(alerts, ["retry", "--channel", "broken"], obj).output
    assert "1 failed alert(s) queued again" in run(alerts, ["retry"], obj).output
    assert statuses(store) == {"pending": 4}


def _commands():
    for group in (digest, alerts):
        yield group
        yield from group.commands.values()


@pytest.mark.parametrize("command", list(_commands()), ids=lambda c: c.name)
def test_every_command_help_ends_with_an_example(command):
    help_text = command.get_help(click.Context(command, info_name=command.name)).rstrip()
    block = help_text.split("Example:")[-1].split("Options:")[0].strip()
    assert "Example:" in help_text and block.startswith(("watcher ", "SMTP_PASSWORD=")), help_text


def test_docs_cover_every_channel_key_and_command():
    from pathlib import Path

    from watcher.alerts.registry import CHANNEL_TYPES
    from watcher.config_sections import COMMON_CHANNEL_KEYS

    docs = (Path(__file__).parent.parent / "docs" / "alerts.md").read_text()
    for key in {k for t in CHANNEL_TYPES.values() for k in t.option_keys()} | set(COMMON_CHANNEL_KEYS):
        assert f"{key} = " in docs or f"`{key}`" in docs, key
    for channel_type in CHANNEL_TYPES:
        assert f'type = "{channel_type}"' in docs
    for group in (digest, alerts):
        for name in group.commands:
            assert f"watcher {group.name} {name}" in docs
