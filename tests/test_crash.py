"""kill -9 at random moments (docs/reliability.md, "Faults it must survive"): the daemon as users run it, against a
local news site whose feeds keep growing, a real SMTP server and a webhook, killed with SIGKILL again and again
and restarted each time; then one last run that is left alone until everything is delivered.

What the run proves (one scenario, run once per module, then read by the tests below):
  * the database opens clean after every kill (`PRAGMA integrity_check`, read-only between runs), and a match
    is never committed without its deliveries (one transaction);
  * every story the site published that matches a topic ends up as a match, and every match is delivered to
    every channel; no delivery is left pending;
  * an item reaches a channel twice only when the first message carrying it was a send cut off by a kill (the
    last message of a killed run that the database had not recorded as sent), and then at most once more per
    such cut.

The kills are seeded (SEED): the stories, the plan of kill kinds and the moments come from random.Random
streams of that seed. Kill kinds: after a random delay; right after a feed update with a match was committed;
right after an "alerts: sent" line; and while the SMTP server or the webhook holds a message it has received but
not yet answered (a send in flight, for sure). Timing on a loaded machine still varies what each delay hits;
the assertions hold for every interleaving.

The last run is the plain command too: a restarted daemon takes back at once the claims of the killed process
(alerts/outbox.py, claims carry their owner), so a send cut by a kill goes again at its first alert pass. The
alert job runs every 2 s here ([schedule] alerts).

One gap found by this scenario is pinned as a strict xfail (it turns into a failure when fixed, so the marker can
go): a resend is batched with other due items and so carries a new Message-ID / Idempotency-Key. Two others are
fixed and kept so by their tests: a cut send waited out a 5-minute lease after a restart
(test_a_send_cut_off_by_a_kill_goes_again_at_the_next_pass), and a killed daemon's extraction workers lived on
(test_a_killed_daemon_leaves_no_processes_behind).

CRASH_SEED=n picks another seed; CRASH_LOGS=1 prints every run's log (with -s).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from tests.helpers.crash_support import DaemonRun, DbState, NewsSite, Receipt, Receivers, read_db
from tests.helpers.localsite import LocalSite

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CRASH_SEED", "20261126"))
KILLS = 14
EVENT_DEADLINE_S = 8.0  # a kill waiting for an event that does not come kills anyway after this
FINAL_DEADLINE_S = 50.0  # the last run: the first alert pass comes 2 s after start, the next 20 s later
CHANNELS = ("mail", "hook")

CONFIG = """
[watcher]
database = "watcher.db"
alert_on_first_poll = true
[schedule]
interval = "2s"
tick = "1s"
alerts = "2s"
[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "5s"
[extract]
workers = 1
# Its stories are template texts that differ by a number; here every article must be its own alert.
[stories]
window = "0s"
{feeds}
[topics.drone_cooperation]
rule = "drone* AND (produc* OR factory OR plant)"
[topics.troop_deployment]
rule = "troop* AND (deploy* OR sent)"
[channels.mail]
type = "email"
mode = "immediate"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "watcher@example.com"
to = ["desk@example.com"]
timeout = "10s"
[channels.hook]
type = "webhook"
mode = "immediate"
url = "{hook_url}"
"""


@dataclass
class Cut:
    """A send cut off by a kill: the last message of a killed run on a channel, not recorded as sent."""

    channel: str
    run: int
    receipt: Receipt
    delivery_ids: frozenset[int]
    killed_at: datetime
    retry_at: list[str]  # next_attempt_at of its deliveries right after the kill


@dataclass
class Scenario:
    seed: int
    kinds: list[str] = field(default_factory=list)  # per killed run, the kind of kill that happened
    integrity: list[str] = field(default_factory=list)  # per kill
    unpaired: list[int] = field(default_factory=list)  # per kill: matches without their deliveries (or the reverse)
    unmarked: list[str] = field(default_factory=list)  # receipts of a killed run, not its last, not marked sent
    cuts: list[Cut] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # processes of a killed daemon still alive 2 s after the kill
    receipts: list[Receipt] = field(default_factory=list)
    expected: set[tuple[str, str]] = field(default_factory=set)
    final: DbState | None = None
    final_exit: int | None = None
    durations: dict[str, float] = field(default_factory=dict)
    log_tail: str = ""
    logs: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)  # logs of runs that ended before they were killed
    final_leftovers: list[str] = field(default_factory=list)  # processes left 3 s after the last run's SIGTERM

    def duplicates(self, channel: str) -> int:
        copies = Counter(item for r in self.receipts if r.channel == channel for item in r.items)
        return sum(n - 1 for n in copies.values())

    def describe(self) -> str:
        kinds = Counter(self.kinds)
        cuts = Counter(c.channel for c in self.cuts)
        return (
            f"seed {self.seed}: {len(self.kinds)} kills {dict(kinds)}; sends cut by a kill: {dict(cuts)}; "
            f"{len(self.receipts)} messages received, {len(self.expected)} matches, items received twice: "
            f"{ {ch: self.duplicates(ch) for ch in CHANNELS} }; timings {self.durations}"
        )


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan(rng: random.Random) -> list[str]:
    plan = ["delay"] * 3 + ["matched"] * 3 + ["sent"] * 2 + ["hold-hook"] * 3 + ["hold-mail"] * 3
    rng.shuffle(plan)
    # Sends cut early leave later runs time to show what happens to them.
    for i in (len(plan) - 1, len(plan) - 2):
        if plan[i].startswith("hold"):
            j = next(j for j in range(len(plan) - 2) if not plan[j].startswith("hold"))
            plan[i], plan[j] = plan[j], plan[i]
    return plan


def _kill_when(daemon: DaemonRun, kind: str, receivers: Receivers, rng: random.Random) -> str:
    """Wait for the moment of this kind of kill, then SIGKILL. Returns what happened ('late' if it never came)."""
    deadline = time.monotonic() + EVENT_DEADLINE_S
    happened = kind
    if kind == "delay":
        try:
            daemon.proc.wait(timeout=rng.uniform(0.2, 3.5))  # a random moment: start-up, polls, extraction, commits
        except subprocess.TimeoutExpired:  # still running, which is the point
            pass
    elif kind == "matched":
        if not daemon.wait_for(r"feed \S+: ok, \d+ new, [1-9]\d* matched", deadline):
            happened = "late"
    elif kind == "sent":
        if daemon.wait_for(r"alerts: sent", deadline):
            try:
                daemon.proc.wait(timeout=rng.uniform(0.0, 0.15))  # the other channel may be mid-send
            except subprocess.TimeoutExpired:
                pass
        else:
            happened = "late"
    else:  # hold-mail / hold-hook: the receiver has the message and has not answered
        hold = receivers.holds[kind.removeprefix("hold-")]
        if not hold.hit.wait(max(0.0, deadline - time.monotonic())):
            happened = "late"
    if daemon.proc.poll() is not None:
        happened = f"exited by itself ({daemon.proc.returncode})"
    daemon.kill()
    for hold in receivers.holds.values():
        hold.disarm()
    return happened


def _classify_receipts(run: int, receivers: Receivers, db: DbState | None, killed_at: datetime, s: Scenario) -> None:
    """Right after a kill: each message of that run was recorded as sent, except perhaps the last one per channel
    (one send at a time per channel), which if not recorded is a send cut off by the kill."""
    for channel in CHANNELS:
        mine = [r for r in receivers.by_channel(channel) if r.run == run]
        for i, receipt in enumerate(mine):
            if db is None:  # cannot happen: a message needs a committed delivery
                s.unmarked.append(f"run {run} {channel} message {receipt.seq}: no database")
                continue
            ids = receipt.delivery_ids or frozenset(db.delivery_ids(channel, receipt.items))
            statuses = {db.deliveries[d][3] for d in ids}
            if statuses == {"sent"}:
                continue
            if i < len(mine) - 1:
                s.unmarked.append(f"run {run} {channel} message {receipt.seq}: {statuses}")
            else:
                s.cuts.append(Cut(channel, run, receipt, frozenset(ids), killed_at, [db.deliveries[d][4] for d in ids]))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    started = time.monotonic()
    # Separate streams: the stories and the plan are the same for a seed whatever the timing did to the moments.
    stories_rng, plan_rng, moments_rng = (random.Random(f"{SEED}:{name}") for name in ("stories", "plan", "moments"))
    s = Scenario(SEED)
    workdir = tmp_path_factory.mktemp("crash")
    db_path = workdir / "watcher.db"
    site, hook_site = LocalSite().start(), LocalSite().start()
    receivers = Receivers(hook_site)
    news = NewsSite(site)
    feeds = "".join(
        f'[[feeds]]\nname = "{name}"\nurl = "{site.url(path)}"\n' for name, (path, _) in NewsSite.FEEDS.items()
    )
    (workdir / "config.toml").write_text(
        CONFIG.format(feeds=feeds, smtp_port=receivers.smtp.port, hook_url=receivers.hook_url)
    )
    daemon: DaemonRun | None = None
    try:
        plan = _plan(plan_rng)
        for run in range(KILLS):
            news.add_stories(stories_rng, stories_rng.randint(1, 3))  # new work for every run
            kind = plan[run]
            before = read_db(db_path, len(CHANNELS))
            if kind.startswith("hold") and not (before and before.pending_due(kind.removeprefix("hold-"), _now_text())):
                # Nothing due on that channel, so no send to catch: commit some matches now, catch the send next run.
                plan.insert(run + 1, kind)
                later = [j for j in range(len(plan) - 1, run + 1, -1) if not plan[j].startswith("hold")]
                if later:  # the plan keeps its length and its holds: a later kill of another kind makes room
                    del plan[later[0]]
                kind = "matched"
            if kind.startswith("hold"):
                receivers.holds[kind.removeprefix("hold-")].arm()
            receivers.run = run
            daemon = DaemonRun(workdir)
            s.kinds.append(_kill_when(daemon, kind, receivers, moments_rng))
            killed_at = datetime.now(UTC)
            # The extraction workers (and multiprocessing's helpers) of a killed daemon must go by themselves.
            deadline = time.monotonic() + 2.0
            while (left := daemon.leftovers()) and time.monotonic() < deadline:
                time.sleep(0.05)
            s.leftovers += [f"run {run}: {p}" for p in left]
            daemon.reap_session()  # whatever is left, so that one failure does not pile up processes
            db = read_db(db_path, len(CHANNELS))
            s.integrity.append(db.integrity if db else "ok (no database yet)")
            s.unpaired.append(db.unpaired if db else 0)
            _classify_receipts(run, receivers, db, killed_at, s)
            s.logs.append(f"--- run {run} ({kind} -> {s.kinds[-1]})\n" + daemon.drain_log())
            if s.kinds[-1].startswith("exited"):
                s.exits.append(s.logs[-1][-2000:])
        s.durations["kills_s"] = round(time.monotonic() - started, 1)

        # The last run: left alone until everything is delivered.
        final_started = time.monotonic()
        receivers.run = KILLS
        daemon = DaemonRun(workdir)
        s.expected = news.expected_matches()
        deadline = time.monotonic() + FINAL_DEADLINE_S
        while time.monotonic() < deadline and daemon.proc.poll() is None:
            db = read_db(db_path, len(CHANNELS))
            if (
                db
                and db.matches >= s.expected
                and db.deliveries
                and all(d[3] == "sent" for d in db.deliveries.values())
            ):
                break
            time.sleep(0.2)  # polling the database for a condition, with a deadline
        s.durations["final_s"] = round(time.monotonic() - final_started, 1)
        s.final_exit = daemon.stop()
        s.log_tail = daemon.drain_log()[-3000:]
        deadline = time.monotonic() + 3.0  # a clean stop shuts the extraction pool down; give it a moment
        while (left := daemon.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        s.final_leftovers = left
        s.final = read_db(db_path, len(CHANNELS))
        s.receipts = list(receivers.receipts)
    finally:
        if daemon is not None and daemon.proc.poll() is None:
            daemon.kill()
        if daemon is not None:
            daemon.reap_session()
        receivers.stop()
        site.stop()
        hook_site.stop()
    s.durations["total_s"] = round(time.monotonic() - started, 1)
    print("\ncrash test:", s.describe())
    if os.environ.get("CRASH_LOGS"):
        print("".join(s.logs), s.log_tail)
    return s


def test_the_database_opens_clean_after_every_kill(scenario):
    assert len(scenario.kinds) == KILLS, scenario.describe()
    assert scenario.exits == [], "a restarted daemon stopped by itself:\n" + "\n".join(scenario.exits)
    assert scenario.integrity == ["ok"] * KILLS, scenario.describe()
    assert scenario.final is not None and scenario.final.integrity == "ok"
    # A match and its deliveries are one transaction: after no kill is one without the other.
    assert scenario.unpaired == [0] * KILLS, scenario.describe()
    assert scenario.final.unpaired == 0


def test_every_published_match_is_delivered_to_every_channel_and_nothing_is_left_pending(scenario):
    final = scenario.final
    assert scenario.final_exit == 0, scenario.log_tail
    assert scenario.final_leftovers == [], "a daemon stopped by SIGTERM left processes behind"
    assert final.matches == scenario.expected, f"{scenario.describe()}\n{scenario.log_tail}"
    pending = [d for d in final.deliveries.values() if d[3] != "sent"]
    assert pending == [], f"{scenario.describe()}\n{scenario.log_tail}"
    assert len(final.deliveries) == len(CHANNELS) * len(final.matches)
    for channel in CHANNELS:
        received = {item for r in scenario.receipts if r.channel == channel for item in r.items}
        assert received == final.matches, f"{channel}: {scenario.describe()}"


def test_an_item_comes_twice_only_after_a_send_cut_off_by_a_kill(scenario):
    assert scenario.unmarked == [], "a message was received but never recorded as sent, and was not the one in flight"
    kinds = Counter(scenario.kinds)
    holds = (kinds["hold-mail"], kinds["hold-hook"])
    assert min(holds) >= 1 and sum(holds) >= 4, f"too few sends caught in flight: {scenario.describe()}"
    for channel in CHANNELS:
        cuts = [c for c in scenario.cuts if c.channel == channel]
        assert len(cuts) <= KILLS
        cut_seqs = {c.receipt.seq for c in cuts}
        copies: dict[tuple[str, str], list[Receipt]] = {}
        for r in scenario.receipts:
            if r.channel == channel:
                for item in r.items:
                    copies.setdefault(item, []).append(r)
        for item, received in copies.items():
            # Every copy but the last was a cut send, each cut is repeated once: one duplicate per cut, never more.
            assert all(r.seq in cut_seqs for r in received[:-1]), (channel, item, received, scenario.describe())
    # On the webhook each item carries its delivery id: a second copy is the same delivery sent again, never a
    # second delivery of the same (article, topic).
    outbox_ids = {
        (url, topic): did for did, (ch, url, topic, _, _) in scenario.final.deliveries.items() if ch == "hook"
    }
    for r in scenario.receipts:
        if r.channel == "hook":
            assert all(outbox_ids[item] == did for item, did in r.ids), r
    # The same key always means the same items.
    for channel in CHANNELS:
        by_key: dict[str, set[frozenset]] = {}
        for r in scenario.receipts:
            if r.channel == channel:
                by_key.setdefault(r.key, set()).add(r.items)
        assert all(len(v) == 1 for v in by_key.values()), channel


def test_a_send_cut_off_by_a_kill_goes_again_at_the_next_pass(scenario):
    checked = 0
    for cut in scenario.cuts:
        later = [r for r in scenario.receipts if r.channel == cut.channel and cut.run < r.run < KILLS]
        if not later:
            continue  # no later killed run sent anything on this channel
        checked += 1
        assert cut.receipt.items <= later[0].items, (
            f"{cut.channel}: items cut off in run {cut.run} not in the next message (run {later[0].run}); "
            f"claimed until {cut.retry_at}, killed at {cut.killed_at:%H:%M:%S}"
        )
    assert checked, "no cut send was followed by another send in a later run"


@pytest.mark.xfail(
    strict=True,
    reason=(
        "a resend is batched with whatever else is due, so it gets a new Message-ID / Idempotency-Key "
        "(a hash of the batch's delivery ids) and a receiver cannot fold the twin"
    ),
)
def test_a_resend_carries_the_key_of_the_message_it_repeats(scenario):
    resent = 0
    for cut in scenario.cuts:
        again = [
            r
            for r in scenario.receipts
            if r.channel == cut.channel and r.seq > cut.receipt.seq and r.items & cut.receipt.items
        ]
        if not again:
            continue  # the cut message never reached the receiver's records twice
        resent += 1
        assert again[0].key == cut.receipt.key, (cut.channel, cut.receipt.items, again[0].items)
    assert resent


def test_a_killed_daemon_leaves_no_processes_behind(scenario):
    # Before extract.py tied its workers to the daemon (PR_SET_PDEATHSIG, spawn), every kill left a worker, a
    # forkserver and a resource tracker alive under init, for good.
    assert scenario.leftovers == []
