"""`watcher digest ...` and `watcher alerts ...`: thin click commands over the Dispatcher and the store's outbox.

The main `watcher` group puts an object with `config` and `store` on the click context (ctx.obj) and attaches
these groups with `main.add_command(digest)` / `main.add_command(alerts)`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..alerts.outbox import Dispatcher, DispatchReport
from ..config import parse_duration
from ..display import display_text
from ..errors import WatcherError
from .app import App


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _dispatcher(obj: App, *, with_channels: bool = True) -> Dispatcher:
    return Dispatcher(obj.config, obj.store, None if with_channels else {})


def _check_channel(obj: App, name: str | None) -> None:
    names = [c.name for c in obj.config.channels]
    if name is not None and name not in names:
        raise click.BadParameter(
            f"no channel named {name!r}; configured: {', '.join(names) or 'none'}", param_hint="--channel"
        )


def _echo_report(report: DispatchReport, channel: str) -> bool:
    if channel in report.busy:
        click.echo(f"{channel}: busy (another send is in progress); try again in a minute")
        return False
    for error in report.errors:
        click.echo(f"{error}", err=True)
    if not report.outcomes and not report.errors:
        click.echo(f"{channel}: nothing pending")
    for o in report.outcomes:
        line = f"{o.channel}: {o.kind} of {o.items} item(s): {o.status}"
        if o.error:
            line += f": {o.error}"
        if o.retry_at:
            line += f" (next try {o.retry_at.isoformat()})"
        click.echo(line, err=o.status != "sent")
    return report.ok


# --- watcher digest -------------------------------------------------------------------------------------------


@click.group()
def digest() -> None:
    """Preview digests, or send one now.

    \b
    Example:
        watcher digest preview --channel team_email
    """


@digest.command("preview")
@click.option("--channel", "-c", help="Only this channel (default: every digest-mode channel).")
@click.option(
    "--since",
    default=None,
    help="Instead of the next digest: every match of this recent past (90m, 24h, 7d), delivered or not.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "slack"]),
    default="text",
    show_default=True,
    help="text: the email's plain text; slack: the Block Kit JSON a Slack channel would post, and how it reads.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the HTML (email) rendering to this file, to open in a browser.",
)
@click.pass_obj
def preview_command(obj: App, channel: str | None, since: str | None, fmt: str, html_file: Path | None) -> None:
    """Show the next digest: exactly what `digest send` would send now. Nothing is sent or marked.

    With --since, show instead every match of that recent past, delivered or not.

    \b
    Example:
        watcher digest preview --channel team_email --html digest.html
        watcher digest preview --channel team_slack --format slack
        watcher digest preview --since 48h
    """
    from ..alerts.slack import plain_rendering, render_payload

    _check_channel(obj, channel)
    dispatcher = _dispatcher(obj, with_channels=False)
    now = _now()
    if since is not None:
        try:
            window = parse_duration(since)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--since") from e
        messages = [dispatcher.preview(channel, window, now)]
        click.echo(f"every match of the last {since}, delivered or not (not the next digest)", err=True)
    else:
        names = [channel] if channel else [c.name for c in obj.config.channels if c.mode == "digest"]
        if not names:
            raise click.UsageError("no digest channels configured; name one with --channel, or use --since 24h")
        if html_file is not None and len(names) > 1:
            raise click.UsageError("--html writes one digest: choose its channel with --channel")
        messages = [dispatcher.next_digest(name, now) for name in names]
    for message in messages:
        if len(messages) > 1:
            click.echo(f"--- channel {message.channel}: {len(message.items)} item(s) ---")
        if fmt == "slack":
            payload = render_payload(message)
            click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
            click.echo("--- as it reads in Slack ---")
            click.echo(plain_rendering(payload), nl=False)
        else:
            click.echo(message.subject)
            click.echo(message.text, nl=False)
    if html_file is not None:
        html_file.write_text(messages[0].html, encoding="utf-8")
        click.echo(f"HTML written to {html_file}", err=True)


@digest.command("send")
@click.option("--channel", "-c", help="Only this channel (default: every digest-mode channel).")
@click.pass_obj
def send_command(obj: App, channel: str | None) -> None:
    """Send a digest of everything pending now, without waiting for the schedule.

    Items already sent are not sent again; items waiting for a retry keep waiting.

    \b
    Example:
        watcher digest send --channel team_email
    """
    _check_channel(obj, channel)
    names = [channel] if channel else [c.name for c in obj.config.channels if c.mode == "digest"]
    if not names:
        click.echo("no digest channels configured")
        return
    dispatcher = _dispatcher(obj)

    async def send_all() -> bool:
        ok = True
        for name in names:
            ok = _echo_report(await dispatcher.send_digest_now(name, _now()), name) and ok
        return ok

    if not asyncio.run(send_all()):
        raise SystemExit(1)


# --- watcher alerts --------------------------------------------------------------------------------------------


@click.group()
def alerts() -> None:
    """Test channels, list the outbox, retry failed alerts.

    \b
    Example:
        watcher alerts list --failed
    """


@alerts.command("test")
@click.option("--channel", "-c", required=True, help="The channel to send a test message to.")
@click.pass_obj
def test_command(obj: App, channel: str) -> None:
    """Send a test message to a channel, to check its settings and credentials. The outbox is not touched.

    \b
    Example:
        SMTP_PASSWORD=... watcher alerts test --channel team_email
    """
    _check_channel(obj, channel)
    outcome = asyncio.run(_dispatcher(obj).send_test(channel, _now()))
    if outcome.status != "sent":
        click.echo(f"{channel}: test message failed: {outcome.error}", err=True)
        raise SystemExit(1)
    click.echo(f"{channel}: test message sent")


_COLUMNS = ("id", "channel", "topic", "status", "attempts", "when", "title", "last_error")
_WIDTHS = {"title": 50, "last_error": 160}


def _when(row: dict[str, Any]) -> str:
    """The time that matters for the row's status: sent at, next attempt at, or queued at."""
    if row.get("status") == "sent":
        return f"sent {row.get('sent_at') or ''}"
    if row.get("status") == "pending":
        return f"next {row.get('next_attempt_at') or ''}"
    return f"queued {row.get('created_at') or ''}"


@alerts.command("list")
@click.option("--pending", "status", flag_value="pending", help="Only alerts waiting to be sent (or retried).")
@click.option("--failed", "status", flag_value="dead", help="Only dead letters: refused for good, retry by hand.")
@click.option("--sent", "status", flag_value="sent", help="Only alerts that were sent.")
@click.option("--channel", "-c", help="Only this channel.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line).")
@click.pass_obj
def list_command(obj: App, status: str | None, channel: str | None, limit: int, as_json: bool) -> None:
    """List alerts in the outbox, newest first: status, attempts, next try, last error.

    \b
    Example:
        watcher alerts list --failed --channel team_slack
    """
    rows = obj.store.list_deliveries(status=status, channel=channel, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("no alerts" + (f" with status {status}" if status else ""))
        return
    # Titles and errors come from feeds and servers: cleaned, so no escape sequence reaches the terminal.
    cells = [
        [
            display_text(
                _when(row) if k == "when" else row.get(k) if row.get(k) is not None else "", _WIDTHS.get(k, 40)
            )
            for k in _COLUMNS
        ]
        for row in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(_COLUMNS)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(_COLUMNS, widths)).rstrip())
    for cell in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip())


@alerts.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--channel", "-c", help="Only dead letters of this channel.")
@click.option("--send", is_flag=True, help="Send them now instead of leaving it to the daemon's next pass.")
@click.pass_obj
def retry_command(obj: App, ids: tuple[int, ...], channel: str | None, send: bool) -> None:
    """Put dead letters (all, a channel's, or the given IDs) back in the queue.

    A running daemon sends them within a minute; --send sends them from this command.

    \b
    Example:
        watcher alerts retry --channel team_slack 41 42
    """
    _check_channel(obj, channel)
    count = obj.store.retry_dead(_now(), channel=channel, ids=list(ids))
    click.echo(f"{count} failed alert(s) queued again")
    if send and count:
        report = asyncio.run(_dispatcher(obj).run(_now()))
        ok = True
        for name in sorted({o.channel for o in report.outcomes} | set(report.busy)):
            ok = (
                _echo_report(
                    DispatchReport(
                        tuple(o for o in report.outcomes if o.channel == name),
                        (),
                        tuple(b for b in report.busy if b == name),
                    ),
                    name,
                )
                and ok
            )
        for error in report.errors:
            click.echo(error, err=True)
        if not ok or report.errors:
            raise SystemExit(1)


def _guard(group: click.Group) -> None:
    """Expected errors (a missing config, a busy database) as one line, also when these groups run on their own."""
    original = group.invoke

    def invoke(ctx: click.Context) -> Any:
        try:
            return original(ctx)
        except WatcherError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)

    group.invoke = invoke  # type: ignore[method-assign]


_guard(digest)
_guard(alerts)
