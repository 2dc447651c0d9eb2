"""Pieces of the crash test (tests/test_crash.py), no tests here: a news site whose feeds keep growing, SMTP and
webhook receivers that record every message (and can hold one in flight until the test has killed the sender),
the daemon as a subprocess in its own session, and read-only looks at the database between runs.
"""

from __future__ import annotations

import asyncio
import email.policy
import json
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import ClassVar

TESTS = Path(__file__).resolve().parent.parent
ARTICLE_TEMPLATE = (TESTS / "fixtures" / "site" / "article.html").read_text(encoding="utf-8")


# --- the news site -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Story:
    n: int
    title: str
    paragraphs: tuple[str, ...]
    topics: frozenset[str]  # the topics the config's rules give it (checked against the database at the end)
    feeds: tuple[str, ...]  # the feeds that carry it (more than one: the same story cross-posted)


# (title template, paragraphs, topics) for the rules of test_crash.CONFIG
KINDS = (
    (
        "Factory {n} to produce attack drones",
        (
            "The plant will produce drones for export from next spring, officials said.",
            "Engineers from abroad will help set up the production lines.",
        ),
        frozenset({"drone_cooperation"}),
    ),
    (
        "Troops deployed to border post {n}",
        (
            "Troops were deployed overnight to the border post, the ministry said.",
            "A spokesman declined to say how many soldiers were involved.",
        ),
        frozenset({"troop_deployment"}),
    ),
    (
        "Troops deployed to guard drone factory {n}",
        (
            "Troops were deployed to guard the drone plant after the attack.",
            "The factory will keep its production going, its director said.",
        ),
        frozenset({"drone_cooperation", "troop_deployment"}),
    ),
    (
        "Markets close higher on day {n}",
        (
            "Exporters led the gains as the currency weakened against the dollar.",
            "Trading volumes were thin ahead of the holiday.",
        ),
        frozenset(),
    ),
    (
        "Snow expected in the capital on day {n}",
        ("Forecasters expect ten centimetres of snow by Friday.", "Schools may close early, the city said."),
        frozenset(),
    ),
)


class NewsSite:
    """Feeds (two RSS 2.0, one Atom) on a LocalSite; `add_stories(rng)` publishes new items and their pages."""

    FEEDS: ClassVar[dict[str, tuple[str, str]]] = {
        "wire": ("/wire.rss", "rss"),
        "asia": ("/asia.atom", "atom"),
        "defence": ("/defence.rss", "rss"),
    }

    def __init__(self, site):
        self.site = site
        self.stories: list[Story] = []
        self._serial = 0
        for name in self.FEEDS:
            self._publish(name)

    def url(self, story: Story) -> str:
        return self.site.url(f"/a/{story.n}.html")

    def add_stories(self, rng: random.Random, count: int) -> list[Story]:
        """`count` new stories, the first one always matching, some carried by two feeds."""
        added = []
        for i in range(count):
            self._serial += 1
            title, paragraphs, topics = KINDS[rng.randrange(3) if i == 0 else rng.randrange(len(KINDS))]
            feeds = tuple(rng.sample(sorted(self.FEEDS), 2 if rng.random() < 0.25 else 1))
            story = Story(self._serial, title.format(n=self._serial), paragraphs, topics, feeds)
            html = ARTICLE_TEMPLATE.replace("{title}", story.title).replace(
                "{paragraphs}", "\n".join(f"<p>{p}</p>" for p in paragraphs)
            )
            self.site.add(f"/a/{story.n}.html", html, content_type="text/html; charset=utf-8")
            self.stories.append(story)
            added.append(story)
        for name in {f for s in added for f in s.feeds}:
            self._publish(name)
        return added

    def expected_matches(self) -> set[tuple[str, str]]:
        return {(self.url(s), t) for s in self.stories for t in s.topics}

    def _publish(self, name: str) -> None:
        path, kind = self.FEEDS[name]
        items = [s for s in self.stories if name in s.feeds][::-1]  # newest first, as feeds list them
        if kind == "rss":
            body = "".join(
                f'<item><title>{s.title}</title><link>{self.url(s)}</link><guid isPermaLink="false">{name}-{s.n}</guid>'
                f"<pubDate>Thu, 26 Nov 2026 {s.n // 60 % 24:02d}:{s.n % 60:02d}:00 GMT</pubDate>"
                f"<description>{s.paragraphs[0]}</description></item>"
                for s in items
            )
            xml = (
                f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>'
                f"<link>{self.site.url('/')}</link><description>test feed</description>{body}</channel></rss>"
            )
            ctype = "application/rss+xml"
        else:
            body = "".join(
                f'<entry><id>urn:test:{name}:{s.n}</id><title>{s.title}</title><link href="{self.url(s)}"/>'
                f"<updated>2026-11-26T{s.n // 60 % 24:02d}:{s.n % 60:02d}:00Z</updated><summary>{s.paragraphs[0]}</summary></entry>"
                for s in items
            )
            xml = (
                f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>{name}</title>'
                f"<id>urn:test:{name}</id><updated>2026-11-26T00:00:00Z</updated>{body}</feed>"
            )
            ctype = "application/atom+xml"
        self.site.add(path, xml, content_type=ctype)


# --- the receivers ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receipt:
    """One message as a receiver got it: which daemon run sent it, its dedup key, and its items."""

    channel: str
    run: int  # the daemon run (incarnation) that sent it
    seq: int  # order of arrival across both receivers
    key: str  # Message-ID (email) or Idempotency-Key (webhook)
    items: frozenset[tuple[str, str]]  # (article url, topic)
    ids: tuple[tuple[tuple[str, str], int], ...] = ()  # webhook items carry their delivery id; email items do not

    @property
    def delivery_ids(self) -> frozenset[int]:
        return frozenset(i for _, i in self.ids)


class Hold:
    """Arm it, and the next message a receiver gets is recorded, then held unanswered until `release`."""

    def __init__(self) -> None:
        self.armed = False
        self.hit = threading.Event()
        self.release = threading.Event()

    def arm(self) -> None:
        self.hit.clear()
        self.release.clear()
        self.armed = True

    def take(self) -> bool:
        if not self.armed:
            return False
        self.armed = False
        self.hit.set()
        return True

    def disarm(self) -> None:
        self.armed = False
        self.release.set()


class Receivers:
    """The SMTP server and the webhook endpoint of the test, recording into one ordered list of receipts."""

    def __init__(self, hook_site) -> None:
        from tests.helpers.smtp_server import SmtpServer

        self.lock = threading.Lock()
        self.receipts: list[Receipt] = []
        self.run = 0  # set by the test before each daemon start
        self.holds = {"mail": Hold(), "hook": Hold()}
        self.hook_site = hook_site
        self._taken = 0
        self.hook_url = hook_site.add("/hook", handler=self._hook)
        self.smtp = SmtpServer()
        self.smtp.controller.handler = _HoldingSmtpHandler(self)  # read by the controller at start()
        self.smtp.start()

    def stop(self) -> None:
        for hold in self.holds.values():
            hold.disarm()
        self.smtp.stop()

    def _record(self, channel: str, key: str, items: frozenset, ids: tuple = ()) -> None:
        with self.lock:
            self.receipts.append(Receipt(channel, self.run, len(self.receipts), key, items, ids))

    def _hook(self, handler) -> None:
        site = self.hook_site
        with site.lock:  # the request was appended just before this handler was called
            request = site.requests[self._taken]
            self._taken += 1
        body = json.loads(request.body)
        items = frozenset((i["url"], i["topic"]) for i in body["items"])
        ids = tuple(((i["url"], i["topic"]), i["id"]) for i in body["items"])
        self._record("hook", request.headers.get("idempotency-key", ""), items, ids)
        hold = self.holds["hook"]
        if hold.take():
            hold.release.wait(30)  # the test kills the daemon meanwhile: the answer goes nowhere
        try:
            handler.send_bytes(200, b"ok", {"content-type": "text/plain"})
        except OSError:
            pass

    def by_channel(self, channel: str) -> list[Receipt]:
        with self.lock:
            return [r for r in self.receipts if r.channel == channel]


class _HoldingSmtpHandler:
    def __init__(self, receivers: Receivers):
        self.receivers = receivers

    async def handle_DATA(self, smtp, session, envelope) -> str:
        mail = message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.receivers._record("mail", str(mail["Message-ID"]), email_items(mail))
        hold = self.receivers.holds["mail"]
        if hold.take():
            await asyncio.get_running_loop().run_in_executor(None, hold.release.wait, 30)
        return "250 2.0.0 OK"


_TOPIC_LINE = re.compile(r"^== (\S+) \(\d+\)")
_URL_LINE = re.compile(r"^\s+(https?://\S+)\s*$")


def email_items(mail) -> frozenset[tuple[str, str]]:
    """(url, topic) of every item of an alert email, read from its plain-text part (alerts/templates/message.txt)."""
    text = mail.get_body(preferencelist=("plain",)).get_content()
    items, topic = set(), None
    for line in text.splitlines():
        if m := _TOPIC_LINE.match(line):
            topic = m.group(1)
        elif (m := _URL_LINE.match(line)) and topic:
            items.add((m.group(1), topic))
    return frozenset(items)


# --- the daemon ------------------------------------------------------------------------------------------------


class DaemonRun:
    """`watcher run` in a subprocess in a session of its own (so the extraction workers it leaves can be found),
    its log lines readable with a deadline instead of sleeps."""

    def __init__(self, workdir: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        cmd = [sys.executable, "-m", "watcher"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*cmd, "--config", str(workdir / "config.toml"), "run"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: str, deadline: float) -> re.Match | None:
        """The first new log line matching `pattern` before `deadline` (time.monotonic()), else None."""
        regex = re.compile(pattern)
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:  # the process ended
                return None
            self.log.append(line)
            if m := regex.search(line):
                return m
        return None

    def drain_log(self) -> str:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.log.append(line)
        return "".join(self.log)

    def kill(self) -> None:
        """SIGKILL the daemon itself, as a crash would; its session's other processes are left for `leftovers`."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def leftovers(self) -> list[str]:
        """Processes still alive in the daemon's session (it was started as the session leader)."""
        return session_processes(self.proc.pid)

    def reap_session(self) -> None:
        """Kill what the daemon left in its session (its process group: only processes this test started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def session_processes(sid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


# --- the database, read-only between runs --------------------------------------------------------------------


@dataclass
class DbState:
    integrity: str
    matches: set[tuple[str, str]] = field(default_factory=set)  # (url, topic), not retracted
    deliveries: dict[int, tuple[str, str, str, str, str]] = field(
        default_factory=dict
    )  # id -> channel, url, topic, status, next_attempt_at
    unpaired: int = 0  # matches without exactly one delivery per channel, or deliveries without a match

    def delivery_ids(self, channel: str, items) -> set[int]:
        wanted = set(items)
        return {i for i, (ch, url, topic, _, _) in self.deliveries.items() if ch == channel and (url, topic) in wanted}

    def pending_due(self, channel: str, now_text: str) -> int:
        return sum(
            1
            for ch, _, _, status, at in self.deliveries.values()
            if ch == channel and status == "pending" and at <= now_text
        )


def read_db(path: Path, channels: int) -> DbState | None:
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"matches", "deliveries", "articles"} <= tables:  # killed before the migrations were done
            return DbState(integrity)
        state = DbState(integrity)
        state.matches = {
            (u, t)
            for u, t in conn.execute(
                "SELECT a.url, m.topic FROM matches m JOIN articles a ON a.id = m.article_id WHERE m.retracted_at IS NULL"
            )
        }
        state.deliveries = {
            r[0]: tuple(r[1:])
            for r in conn.execute(
                "SELECT d.id, d.channel, a.url, d.topic, d.status, d.next_attempt_at FROM deliveries d JOIN articles a ON a.id = d.article_id"
            )
        }
        state.unpaired = conn.execute(
            "SELECT (SELECT count(*) FROM matches m WHERE m.retracted_at IS NULL AND"
            "  (SELECT count(DISTINCT d.channel) FROM deliveries d WHERE d.article_id = m.article_id AND d.topic = m.topic) != ?)"
            " + (SELECT count(*) FROM deliveries d WHERE NOT EXISTS"
            "  (SELECT 1 FROM matches m WHERE m.article_id = d.article_id AND m.topic = d.topic))",
            (channels,),
        ).fetchone()[0]
        return state
    finally:
        conn.close()
