"""The outbox: which deliveries are due on which channel (pure), and the Dispatcher that sends them.

A match and its deliveries are committed together (store.apply_update); this module turns pending deliveries
into messages and records each outcome. The promise: every queued delivery is sent at least once, and more than
once only when a crash (or a send deadline) cut a send that was in flight.

How that holds:
  * a pass claims the deliveries it is about to send (store.claim_deliveries: their next attempt moves a lease
    into the future), so an overlapping pass or a `watcher digest send` in another process skips them;
  * each message's outcome is written right after it: sent -> mark_sent, DeliveryError -> mark_retry with
    back-off, PermanentDeliveryError -> mark_dead (`watcher alerts retry` requeues), anything else is a bug:
    logged with its traceback and retried. One failed message never stops the others (miniflux's Slack sender
    stops at the first error and the rest of the batch is lost);
  * a process killed mid-send leaves its claim behind, marked with its owner (host, pid and a token of the
    process); the next pass of a new process takes back claims whose owner is gone and sends them again at once:
    the one duplicate the promise allows. A claim of an owner it cannot judge (another host) expires (LEASE);
    one of a live process on this host is kept past its lease (it may have sent and be waiting to record it);
  * a send that succeeded is marked sent by retrying while the database is busy (_record_sent), and meanwhile
    no pass of this process takes its deliveries again.

Modes. `immediate`: every due delivery of the channel, batched into one message per pass (split only where the
channel's size limits demand). `digest`: urgent topics go as immediate; the rest wait for the schedule's slot
(schedules.latest_slot: a daemon down across several slots sends one digest) and then go as one digest; a
delivery that already missed its digest (its send failed, or it was requeued by hand) goes at the next pass.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..config import ChannelConfig, Config, ConfigError, ConfigProblem
from ..errors import DeliveryError, PermanentDeliveryError, StoreError, WatcherError
from ..models import Delivery
from ..processes import other_process_running
from ..schedules import latest_slot
from ..store import Store
from .channel import Channel, ChannelContext
from .digest import Message, RenderSettings, build_message, item_from_delivery
from .http import Pacer
from .registry import CHANNEL_TYPES

log = logging.getLogger("watcher.alerts")

RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
RETRY_AFTER_MAX = timedelta(days=1)
LEASE = timedelta(minutes=5)  # a claimed delivery is left alone this long; a send that outlives it may repeat
SEND_DEADLINE_S = 120.0  # one send, all parts of its conversation (SMTP, HTTP); well inside LEASE


# Who this process is, for the claims it takes: host / pid / a token unique to this process's life (a restarted
# daemon in a container often gets the same pid back).
CLAIM_OWNER = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
RECORD_RETRY_MAX_S = 30.0


def claim_holder_is_alive(owner: str) -> bool:
    """Whether the process that took a claim may still be sending it. Unknown or foreign owners count as alive."""
    host, _, rest = owner.partition("/")
    pid_text, _, _token = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's process: let its lease run out
    if owner == CLAIM_OWNER:
        return True
    return other_process_running(int(pid_text))  # our own pid with another token: the process we replaced


def claim_holder_is_local_and_alive(owner: str) -> bool:
    """An owner whose claims are kept past their lease: another process on this host that is still running. It
    may have sent and be retrying to record it while the database is busy; sending again would be a duplicate.
    (A process on another host cannot be judged: its lease decides, as before.)"""
    host, _, rest = owner.partition("/")
    return host == socket.gethostname() and rest.partition("/")[0].isdigit() and claim_holder_is_alive(owner)


def build_channels(config: Config, *, slack_pacer: Pacer | None = None) -> dict[str, Channel]:
    """One channel object per [channels.*] entry, built through the registry. Channels share one pacer (Slack: one
    message per second per webhook URL)."""
    config_file = Path(config.path)
    # Relative paths in options are relative to the config file, like the database: the working directory of
    # the daemon does not matter.
    context = ChannelContext(
        config_dir=config_file.resolve().parent if config_file.is_file() else None,
        use_env_proxy=config.fetch.use_env_proxy,
        pacer=slack_pacer or Pacer(1.0),
    )
    return {ch.name: CHANNEL_TYPES[ch.type].make(ch.name, ch.options, context) for ch in config.channels}


# --- decisions (pure) ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    kind: str  # "immediate", "digest", or "joined" (a story already alerted on the channel: recorded, not sent)
    deliveries: tuple[Delivery, ...]


def plan_batches(
    channel: ChannelConfig,
    pending: Sequence[Delivery],
    *,
    urgent_topics: frozenset[str] | set[str],
    slot: datetime | None,
    last_digest_at: datetime | None,
) -> list[Batch]:
    """What to send on one channel now, given its due deliveries. An empty digest batch means 'send empty'.

    An immediate alert goes once per story and channel: a later source of a story already sent joins it silently
    (an immediate channel records it as joined; a digest channel shows it in its next digest, "also reported by").
    """
    if channel.mode == "immediate":
        fresh = tuple(d for d in pending if not d.story_alerted)
        joined = tuple(d for d in pending if d.story_alerted)
        return ([Batch("immediate", fresh)] if fresh else []) + ([Batch("joined", joined)] if joined else [])
    urgent, overdue, waiting = [], [], []
    for d in pending:
        if channel.urgent_immediately and d.topic in urgent_topics and not d.possible and not d.story_alerted:
            urgent.append(d)
        elif d.attempts > 0 or (
            last_digest_at is not None and d.created_at is not None and d.created_at <= last_digest_at
        ):
            overdue.append(d)  # its digest already went (or failed): do not make it wait for the next slot
        else:
            waiting.append(d)
    batches = [Batch("immediate", tuple(urgent))] if urgent else []
    if slot is not None:
        if overdue or waiting or channel.send_empty:
            batches.append(Batch("digest", tuple(overdue + waiting)))
    elif overdue:
        batches.append(Batch("digest", tuple(overdue)))
    return batches


def retry_delay(attempts: int, retry_after: timedelta | None = None) -> timedelta:
    """1 min after the first failure, doubling to at most 1 h; a server's Retry-After wins when longer (max 1 day)."""
    delay = min(RETRY_FIRST * (2 ** min(max(attempts, 0), 16)), RETRY_MAX)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, RETRY_AFTER_MAX)
    return delay


# --- the report ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendOutcome:
    channel: str
    kind: str
    items: int
    status: str  # sent | retry | dead | failed (an empty digest or a test message that could not be sent)
    error: str | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DispatchReport:
    outcomes: tuple[SendOutcome, ...] = ()
    errors: tuple[str, ...] = ()  # channels that could not be processed at all (the store failed, a bug)
    busy: tuple[str, ...] = ()  # channels skipped because an earlier pass is still sending on them

    def count(self, status: str) -> int:
        return sum(o.items for o in self.outcomes if o.status == status)

    @property
    def sent(self) -> int:
        return self.count("sent")

    @property
    def retried(self) -> int:
        return self.count("retry")

    @property
    def dead(self) -> int:
        return self.count("dead")

    @property
    def messages(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "sent")

    @property
    def ok(self) -> bool:
        return not self.errors and all(o.status == "sent" for o in self.outcomes)


# --- the dispatcher -------------------------------------------------------------------------------------------------


@dataclass
class _Pass:
    outcomes: list[SendOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)

    def report(self) -> DispatchReport:
        return DispatchReport(tuple(self.outcomes), tuple(self.errors), tuple(self.busy))


class Dispatcher:
    """`await dispatcher.run(now)` every 20-30 s sends what is due on every channel and records the outcomes."""

    def __init__(self, config: Config, store: Store, channels: Mapping[str, Channel] | None = None):
        self.config = config
        self.store = store
        self.channels: dict[str, Channel] = dict(channels) if channels is not None else build_channels(config)
        self.settings = RenderSettings.from_config(config)
        self.urgent_topics = frozenset(t.name for t in config.topics if t.urgent)
        self._locks: dict[str, asyncio.Lock] = {}

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait up to `timeout_s` for sends in flight to finish (the daemon calls this on SIGTERM, before the loop
        ends). A send cut off by the stop is sent again after its claim expires. True if nothing was left sending."""
        locks = list(self._locks.values())

        async def hold_all() -> None:
            for lock in locks:
                async with lock:
                    pass

        try:
            await asyncio.wait_for(hold_all(), timeout_s)
        except TimeoutError:
            return False
        return True

    def channel_config(self, name: str) -> ChannelConfig:
        for ch in self.config.channels:
            if ch.name == name:
                return ch
        known = ", ".join(c.name for c in self.config.channels) or "none"
        raise ConfigError(
            self.config.path, [ConfigProblem(f"channels.{name}", f"a configured channel ({known})", "no such channel")]
        )

    async def run(self, now: datetime) -> DispatchReport:
        """One pass over every channel, concurrently: a slow SMTP server does not hold up Slack."""
        state = _Pass()
        try:
            released = await self.store.call(self.store.release_claims, now, claim_holder_is_alive)
        except StoreError as e:  # busy or unwritable: the channels below report their own failures
            log.error("alerts: claims of gone processes not released this pass: %s", e)
            state.errors.append(f"(claims): {e}")
            released = 0
        if released:
            log.info("alerts: %d deliveries claimed by a process that is gone are due again", released)
        await asyncio.gather(
            *(self._guarded(ch, now, state) for ch in self.config.channels if ch.name in self.channels)
        )
        return state.report()

    async def send_digest_now(self, channel: str, now: datetime) -> DispatchReport:
        """`watcher digest send`: everything due on `channel` as one digest, now, whatever the schedule."""
        ch = self.channel_config(channel)
        state = _Pass()
        await self._guarded(ch, now, state, force_digest=True)
        return state.report()

    async def send_test(self, channel: str, now: datetime) -> SendOutcome:
        """`watcher alerts test`: a sample message straight to the channel, outside the outbox."""
        from .digest import sample_message

        ch = self.channel_config(channel)
        message = sample_message(ch.name, now, self.settings)
        try:
            await asyncio.wait_for(self.channels[ch.name].send(message), SEND_DEADLINE_S)
        except DeliveryError as e:
            return SendOutcome(ch.name, "test", 1, "failed", str(e))
        except TimeoutError:
            return SendOutcome(ch.name, "test", 1, "failed", f"no answer within {SEND_DEADLINE_S:g} s")
        except Exception as e:
            log.exception("alerts: bug while sending a test message to channel %r", ch.name)
            return SendOutcome(ch.name, "test", 1, "failed", f"{type(e).__name__}: {e}")
        return SendOutcome(ch.name, "test", 1, "sent")

    def next_digest(self, channel: str, now: datetime) -> Message:
        """`watcher digest preview`: exactly what `send_digest_now(channel, now)` would send, nothing claimed or marked.

        The same query and rendering as the send: the channel's pending deliveries whose time has come (already
        sent items, matches that never made a delivery and items waiting for a retry are not in it)."""
        ch = self.channel_config(channel)
        pending = self.store.pending_deliveries(ch.name, now)
        return build_message("digest", ch.name, [item_from_delivery(d) for d in pending], now, self.settings)

    def preview(self, channel: str | None, since: timedelta, now: datetime) -> Message:
        """`watcher digest preview --since`: the matches of the last `since` (for `channel`'s topics) as a digest
        Message, whether or not they were delivered. Use `.text` or `.html`."""
        topics: Sequence[str] | None = None
        name = "preview"
        if channel is not None:
            ch = self.channel_config(channel)
            name, topics = ch.name, (ch.topics or None)
        matches = self.store.recent_matches(now - since, topics=topics)
        return build_message("digest", name, [item_from_delivery(d) for d in matches], now, self.settings)

    # --- one channel -----------------------------------------------------------------------------------------------

    async def _guarded(self, ch: ChannelConfig, now: datetime, state: _Pass, *, force_digest: bool = False) -> None:
        lock = self._locks.setdefault(ch.name, asyncio.Lock())
        if lock.locked():  # the previous pass is still sending here; its claims keep us honest anyway
            state.busy.append(ch.name)
            return
        async with lock:
            try:
                await self._run_channel(ch, now, state, force_digest=force_digest)
            except WatcherError as e:  # the store could not be read or written: try again next pass
                log.error("alerts: channel %r: %s", ch.name, e)
                state.errors.append(f"{ch.name}: {e}")
            except Exception as e:  # a bug: keep the daemon and the other channels going
                log.exception("alerts: bug while dispatching channel %r", ch.name)
                state.errors.append(f"{ch.name}: {type(e).__name__}: {e}")

    async def _run_channel(self, ch: ChannelConfig, now: datetime, state: _Pass, *, force_digest: bool) -> None:
        channel = self.channels[ch.name]
        pending = await self.store.call(self.store.pending_deliveries, ch.name, now)
        slot = last = None
        if force_digest:
            batches = [Batch("digest", tuple(pending))] if pending or ch.send_empty else []
        else:
            lost_slot = False
            if ch.mode == "digest":
                last = await self.store.call(self.store.last_digest_at, ch.name)
                slot = latest_slot(ch.schedule, self.config.timezone, now, last)
                # The slot is claimed before the digest goes, whatever the send's outcome (failed items are retried
                # on their own: plan_batches' overdue), so that of several workers (or passes) exactly one sends it.
                if slot is not None and not await self.store.call(self.store.claim_digest_slot, ch.name, slot):
                    log.info("alerts: the digest of channel %r for %s is another worker's", ch.name, slot.isoformat())
                    lost_slot = True
            batches = plan_batches(ch, pending, urgent_topics=self.urgent_topics, slot=slot, last_digest_at=last)
            if lost_slot:  # its items are in that worker's digest: only urgent alerts go from here
                batches = [b for b in batches if b.kind != "digest"]
        for batch in batches:
            await self._send_batch(channel, ch, batch, now, state)
        if force_digest and batches:
            last = await self.store.call(self.store.last_digest_at, ch.name)
            if last is None or now > last:
                await self.store.call(self.store.set_last_digest_at, ch.name, now)

    async def _send_batch(self, channel: Channel, ch: ChannelConfig, batch: Batch, now: datetime, state: _Pass) -> None:
        if batch.kind == "joined":
            # On the store's thread like every write of a pass: a call from the loop would use the one connection
            # while another channel's transaction is open on that thread.
            reason = "joined a story already alerted on this channel"
            await self.store.call(self.store.mark_skipped, [d.id for d in batch.deliveries], reason)
            return
        deliveries = [d for d in batch.deliveries if d.id not in self.store.sent_unrecorded]
        if batch.deliveries and not deliveries:
            return
        if deliveries:
            claimed = set(
                await self.store.call(
                    self.store.claim_deliveries,
                    [d.id for d in deliveries],
                    now,
                    now + LEASE,
                    CLAIM_OWNER,
                    keep_owners=claim_holder_is_local_and_alive,
                )
            )
            deliveries = [d for d in deliveries if d.id in claimed]
            if not deliveries:  # another pass or process took them
                return
        message = await self._render(batch.kind, ch, deliveries, now, state)
        if message is None:
            return
        split = getattr(channel, "split", None)
        parts = list(split(message)) if split else [message]
        attempts = {d.id: d.attempts for d in deliveries}
        for part in parts:
            await self._send_part(
                channel, part, max((attempts.get(i, 0) for i in part.delivery_ids), default=0), now, state
            )

    async def _render(
        self, kind: str, ch: ChannelConfig, deliveries: list[Delivery], now: datetime, state: _Pass
    ) -> Message | None:
        """Render the batch. Should an item break rendering (a bug), isolate it as a dead letter and send the rest."""
        try:
            return build_message(kind, ch.name, [item_from_delivery(d) for d in deliveries], now, self.settings)
        except Exception:
            log.exception("alerts: bug while rendering a %s for channel %r; isolating the item", kind, ch.name)
        good: list[Delivery] = []
        for d in deliveries:
            try:
                build_message(kind, ch.name, [item_from_delivery(d)], now, self.settings)
                good.append(d)
            except Exception as e:
                await self.store.call(self.store.mark_dead, [d.id], f"could not render: {type(e).__name__}: {e}")
                state.outcomes.append(SendOutcome(ch.name, kind, 1, "dead", f"could not render: {e}"))
        if not good:
            return None
        return build_message(kind, ch.name, [item_from_delivery(d) for d in good], now, self.settings)

    async def _send_part(self, channel: Channel, message: Message, attempts: int, now: datetime, state: _Pass) -> None:
        ids = list(message.delivery_ids)
        name, kind, count = message.channel, message.kind, len(message.items)
        error: DeliveryError | None = None
        try:
            await asyncio.wait_for(channel.send(message), SEND_DEADLINE_S)
        except PermanentDeliveryError as e:
            log.error("alerts: %s of %d item(s) to %r refused for good: %s", kind, count, name, e)
            if ids:
                await self.store.call(self.store.mark_dead, ids, str(e))
            state.outcomes.append(SendOutcome(name, kind, count, "dead" if ids else "failed", str(e)))
            return
        except DeliveryError as e:
            error = e
        except TimeoutError:
            error = DeliveryError(f"channel {name!r}: no answer within {SEND_DEADLINE_S:g} s")
        except Exception as e:  # a bug in a channel: never lose the batch for it
            log.exception("alerts: bug while sending to channel %r", name)
            error = DeliveryError(f"channel {name!r}: {type(e).__name__}: {e}")
        if error is not None:
            retry_at = now + retry_delay(attempts, error.retry_after)
            log.warning(
                "alerts: %s of %d item(s) to %r failed, retry at %s: %s", kind, count, name, retry_at.isoformat(), error
            )
            if ids:
                await self.store.call(self.store.mark_retry, ids, str(error), retry_at)
            state.outcomes.append(SendOutcome(name, kind, count, "retry" if ids else "failed", str(error), retry_at))
            return
        if ids:
            await self._record_sent(ids, name, now)
        log.info("alerts: sent %s of %d item(s) to %r", kind, count, name)
        state.outcomes.append(SendOutcome(name, kind, count, "sent"))

    async def _record_sent(self, ids: list[int], channel: str, now: datetime) -> None:
        """Record a send that succeeded before anything else can take its deliveries: retried while the database
        is busy (another process holding the write lock past busy_timeout), never given up for a retry of the send.
        Meanwhile this process keeps the deliveries out of its passes, and the channel's lock stays held, so the
        next pass finds the channel busy; the claim (owned by this live process) keeps other processes away."""
        self.store.sent_unrecorded.update(ids)
        delay = 1.0
        try:
            while True:
                try:
                    await self.store.call(self.store.mark_sent, ids, now)
                    return
                except StoreError as e:
                    log.error(
                        "alerts: %d item(s) were sent to %r but are not recorded yet (%s); retrying in %g s",
                        len(ids),
                        channel,
                        e,
                        delay,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_S)
        finally:
            self.store.sent_unrecorded.difference_update(ids)
