"""The zero-setup channels (console, file) and the generic JSON webhook, each through the dispatcher."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest

from tests.helpers.alerts_support import (
    T0,
    add_articles,
    article,
    make_config,
    open_store,
    statuses,
)
from tests.helpers.webhook_server import Endpoint
from watcher.alerts.console import ConsoleChannel, FileChannel
from watcher.alerts.outbox import Dispatcher, build_channels
from watcher.errors import ConfigError


async def test_console_prints_the_plain_text(tmp_path, capsys):
    config = make_config({"out": {"type": "console", "mode": "immediate"}})
    store = open_store(tmp_path, config)
    add_articles(store, config, [article("drone_cooperation", title="Drones \x1b[2J<b>")], T0)
    await Dispatcher(config, store).run(T0)
    out = capsys.readouterr().out
    assert "watcher alert: drone_cooperation — Drones [2J<b>" in out and "\x1b" not in out
    assert "[Russia]" in out and statuses(store) == {"sent": 1}


async def test_file_channel_writes_text_and_html_with_a_timestamped_name(tmp_path):
    folder = tmp_path / "digests"
    config = make_config(
        {"files": {"type": "file", "mode": "digest", "schedule": "daily at 07:00", "directory": str(folder)}}
    )
    store = open_store(tmp_path, config)
    store.set_last_digest_at("files", T0 - timedelta(days=1))
    add_articles(
        store,
        config,
        [article("drone_cooperation"), article("troop_deployment", title="<script>")],
        T0 - timedelta(hours=1),
    )
    await Dispatcher(config, store).run(T0)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["20261126T090000Z-files-digest.html", "20261126T090000Z-files-digest.txt"]
    assert "&lt;script&gt;" in (folder / names[0]).read_text() and "<script>" in (folder / names[1]).read_text()
    second = FileChannel("files", directory=folder).write(_empty_digest(config))
    assert second.name == "20261126T090000Z-files-digest-2.txt"  # never overwrites


def _empty_digest(config):
    from watcher.alerts.digest import RenderSettings, build_message

    return build_message("digest", "files", [], T0, RenderSettings.from_config(config))


def test_file_directory_is_relative_to_the_config_file(tmp_path):
    config_file = tmp_path / "etc" / "config.toml"
    config_file.parent.mkdir()
    config_file.write_text("")
    config = make_config({"files": {"type": "file"}})
    from dataclasses import replace

    channels = build_channels(replace(config, path=str(config_file)))
    assert channels["files"].directory == tmp_path / "etc" / "digests"


async def test_webhook_posts_json_items_with_an_idempotency_key(tmp_path, site, monkeypatch):
    hook = Endpoint(site, "/incoming")
    monkeypatch.setenv("TEST_HOOK_URL", hook.url)
    monkeypatch.setenv("TEST_HOOK_HEADERS", json.dumps({"Authorization": "Bearer t0ken"}))
    config = make_config(
        {
            "n8n": {
                "type": "webhook",
                "mode": "immediate",
                "url_env": "TEST_HOOK_URL",
                "headers_env": "TEST_HOOK_HEADERS",
            }
        }
    )
    store = open_store(tmp_path, config)
    hook.then(502, "bad gateway").then(200)
    add_articles(
        store,
        config,
        [article("arms_transfers", title="Shells\r\nX-Evil: 1", url="javascript:x"), article("sanctions")],
        T0,
    )
    dispatcher = Dispatcher(config, store)
    assert (await dispatcher.run(T0)).retried == 2
    await dispatcher.run(T0 + timedelta(minutes=1))
    first, second = hook.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]  # the receiver can drop a twin
    assert second.headers["authorization"] == "Bearer t0ken" and second.headers["content-type"] == "application/json"
    body = json.loads(second.body)
    assert body["source"] == "watcher" and body["version"] == 1 and body["kind"] == "immediate"
    items = {i["topic"]: i for i in body["items"]}
    assert items["arms_transfers"]["title"] == "Shells X-Evil: 1" and items["arms_transfers"]["url"] is None
    assert items["sanctions"]["url"].startswith("https://") and items["sanctions"]["snippet"].count("[[") == 2
    assert statuses(store) == {"sent": 2}


async def test_a_channel_built_with_a_stream_writes_there():
    from watcher.alerts.digest import RenderSettings, sample_message

    stream = io.StringIO()
    await ConsoleChannel("c", stream=stream).send(sample_message("c", T0, RenderSettings()))
    assert "Test message from watcher to channel c" in stream.getvalue()


def test_a_new_channel_type_is_one_registry_entry_for_config_and_outbox(monkeypatch):
    """Config reads a type's options and the outbox builds its sender through the one registry."""
    from dataclasses import dataclass

    from watcher.alerts.channel import ChannelOptions, ChannelType
    from watcher.alerts.registry import CHANNEL_TYPES
    from watcher.config import config_from_dict

    @dataclass(frozen=True, slots=True)
    class PagerOptions(ChannelOptions):
        number: str = ""

    class Pager:
        def __init__(self, name: str, number: str):
            self.name, self.number = name, number

        async def send(self, message) -> None:  # pragma: no cover - not sent here
            pass

    def read(t):
        options = PagerOptions(number=t.text("number", ""))
        if not options.number:
            t.missing("number", "a value: pager channels need it")
        return options

    pager = ChannelType("pager", PagerOptions, read, lambda name, o, ctx: Pager(name, o.number))
    monkeypatch.setitem(CHANNEL_TYPES, "pager", pager)
    data = {"topics": {"t": {"rule": "drone"}}, "channels": {"p": {"type": "pager", "number": "555"}}}
    config = config_from_dict(data)
    built = build_channels(config)["p"]
    assert isinstance(built, Pager) and built.number == "555"
    with pytest.raises(ConfigError) as e:
        config_from_dict({**data, "channels": {"p": {"type": "pager", "numbr": "5"}}})
    assert [str(p) for p in e.value.problems] == [
        "channels.p.number: expected a value: pager channels need it, found nothing",
        "channels.p.numbr: expected a known key (mode, number, schedule, send_empty, topics, type, urgent_immediately),"
        " found an unknown key",
    ]
