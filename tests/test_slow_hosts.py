"""Hosts that do not resolve or refuse connections do not hold up a healthy feed polled beside them, and a host that
failed a moment ago fails its other pages at once. Only loopback addresses and an injected resolver: no test here
touches another address."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import httpcore
import pytest

from tests.helpers.news import make_config, serve_site
from watcher import guard
from watcher.errors import FetchError
from watcher.guard import GuardedBackend, parse_networks
from watcher.pipeline import Pipeline, poll
from watcher.runtime import Runtime
from watcher.unreachable import Remembered

LOOPBACK = parse_networks(["127.0.0.0/8"])


def closed_port() -> int:
    """A loopback port where nothing listens (bound for a moment, then released): connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlowDNS:
    """A resolver that holds every lookup until released, then fails it, as an offline machine's resolver does."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        await self.release.wait()
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


def feed_linking_to(site, path: str, links: list[str]) -> None:
    items = "".join(
        f"<item><title>Drone factory story {i}</title><link>{link}</link><guid>{path}-{i}</guid>"
        f"<description>Drone production at a new factory, item {i}.</description></item>"
        for i, link in enumerate(links)
    )
    site.add(path, f'<?xml version="1.0"?><rss version="2.0"><channel>{items}</channel></rss>')


async def test_a_healthy_feed_is_not_held_up_by_feeds_whose_pages_do_not_resolve(site, store, extractor, monkeypatch):
    dns = SlowDNS()
    monkeypatch.setattr(guard, "_system_resolve", dns)
    serve_site(site)
    port = closed_port()
    # Two feeds of links to names that do not resolve (four pages per name), one of links to a refusing port.
    feed_linking_to(site, "/dead-names.rss", [f"http://dead{i % 2}.example.test/story/{i}" for i in range(8)])
    feed_linking_to(site, "/refusing.rss", [f"http://127.0.0.3:{port}/story/{i}" for i in range(6)])
    config = make_config(
        site,
        feeds={"world": "/world.rss", "dead": "/dead-names.rss", "refusing": "/refusing.rss"},
        # Lookups never time out within the test: the dead names stay pending until the test releases them.
        fetch={"connect_timeout": "300s", "timeout": "300s"},
    )
    now = datetime.now(UTC)
    store.sync_feeds(config.feeds, config.schedule.interval, now)
    done: dict[str, asyncio.Event] = {name: asyncio.Event() for name in ("world", "dead", "refusing")}
    async with Runtime(config, workers=extractor) as runtime:
        pipeline = Pipeline.build(config, store, runtime)
        assert runtime.pages_in_flight._value == 2  # two page slots, which the dead pages must not take
        polling = asyncio.ensure_future(poll(pipeline, store.due_feeds(now), on_done=lambda o: done[o.feed.name].set()))
        # The healthy feed and the refusing one finish while every lookup of the dead names is still pending.
        await asyncio.wait_for(asyncio.gather(done["world"].wait(), done["refusing"].wait()), 60)
        assert not done["dead"].is_set()
        assert sorted(dns.calls) == ["dead0.example.test", "dead1.example.test"]  # one lookup per name, shared
        dns.release.set()
        outcomes = {o.feed.name: o for o in await asyncio.wait_for(polling, 60)}
    assert {name: o.update.status for name, o in outcomes.items()} == dict.fromkeys(done, "ok")
    assert sorted(dns.calls) == ["dead0.example.test", "dead1.example.test"]  # the failure was remembered
    world = {a.url: a.page_outcome for a in outcomes["world"].update.articles}
    assert world and set(world.values()) == {"ok"}
    for name in ("dead", "refusing"):
        articles = outcomes[name].update.articles
        assert articles and {a.page_outcome for a in articles} == {"failed"}
        assert all(a.body_source == "feed-summary" for a in articles)  # the feed's own text


async def test_a_refused_host_is_remembered_and_its_next_page_fails_at_once():
    port = closed_port()
    memory: Remembered = Remembered()
    backend = GuardedBackend(LOOPBACK, memory=memory)
    with pytest.raises(httpcore.ConnectError) as first:
        await backend.connect_tcp("127.0.0.4", port, timeout=5)
    with pytest.raises(httpcore.ConnectError) as again:
        await backend.connect_tcp("127.0.0.4", port, timeout=5)
    assert "not tried again yet" in str(again.value) and "not tried again yet" not in str(first.value)
    with pytest.raises(FetchError) as before_a_slot:
        await backend.check_reachable("127.0.0.4", port)
    assert before_a_slot.value.kind == "connect"


async def test_a_name_that_failed_is_not_asked_again_until_the_memory_expires():
    calls: list[str] = []

    async def failing(host: str, port: int) -> list[str]:
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    clock = [0.0]
    backend = GuardedBackend(LOOPBACK, resolve=failing, memory=Remembered(failure_ttl_s=60, clock=lambda: clock[0]))
    for _ in range(3):
        with pytest.raises(FetchError) as caught:
            await backend.addresses("gone.example.test", 443)
        assert caught.value.kind == "dns"
    assert calls == ["gone.example.test"]
    assert "not asked again yet" in caught.value.message
    clock[0] = 61.0
    with pytest.raises(FetchError):
        await backend.addresses("gone.example.test", 443)
    assert calls == ["gone.example.test", "gone.example.test"]
