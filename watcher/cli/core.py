"""The daemon's commands and the first-hour ones: run, poll, check, status, init."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..display import display_text
from ..errors import ConfigError
from .app import DEFAULT_CONFIG, App, ago, echo_table
from .labels import status_lines

if TYPE_CHECKING:
    from ..ops import Health


def _setup_logging(app: App) -> None:
    from ..logs import setup_logging

    # The values of the secrets the config names (SMTP password, webhook URLs) are masked in every log line.
    secrets = tuple(
        os.environ.get(env, "") for channel in app.config.channels for env in channel.options.secret_envs().values()
    )
    setup_logging(app.extras["log_level"] or app.config.log_level, app.extras["log_format"], secrets=secrets)


@click.command()
@click.option(
    "--http",
    "http",
    envvar="WATCHER_HTTP",
    metavar="HOST:PORT",
    default=None,
    help="Serve /healthz and /metrics here (or WATCHER_HTTP); overrides [watcher] http.",
)
@click.pass_obj
def run(app: App, http: str | None) -> None:
    """Run the daemon: poll due feeds, extract, match, store, alert; stop with Ctrl-C or SIGTERM.

    It reloads the config on SIGHUP and whenever the file changes (`watcher feeds add` included).

    \b
    Example:
        watcher --config config.toml --db watcher.db run --http 127.0.0.1:9108
    """
    from ..daemon import catch_early_stop, run_daemon

    early_stop = catch_early_stop()  # before the config is compiled and the database opened: both take time
    _setup_logging(app)
    run_daemon(app.config, app.store, http=http, early_stop=early_stop)


@click.command()
@click.option("--feed", "feed_names", multiple=True, help="Poll only this feed (by name); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON lines.")
@click.pass_obj
def poll(app: App, feed_names: tuple[str, ...], as_json: bool) -> None:
    """Poll every feed (or --feed NAME) once, now, whatever its schedule, and print a summary.

    \b
    Example:
        watcher poll --feed "Yonhap (English)"
    """
    from ..logs import beside_a_progress_bar
    from ..pipeline import Pipeline, utcnow
    from ..pipeline import poll as poll_feeds
    from ..runtime import Runtime

    _setup_logging(app)
    config, store = app.config, app.store
    store.sync_feeds(config.feeds, config.schedule.interval, utcnow())
    known = {f.name for f in config.feeds}
    unknown = [n for n in feed_names if n not in known]
    if unknown:
        raise click.BadParameter(
            f"no feed named {', '.join(map(repr, unknown))}; see `watcher status`", param_hint="--feed"
        )
    feeds = store.due_feeds(utcnow(), names=list(feed_names) or [f.name for f in config.feeds if f.enabled])

    async def go():
        async with Runtime(config) as runtime:
            pipeline = Pipeline.build(config, store, runtime)
            if not sys.stderr.isatty():  # a log file or a pipe: the log lines, no bar
                return await poll_feeds(pipeline, feeds)
            # A terminal: the bar, and only warnings beside it; the table below says how each feed went.
            with (
                beside_a_progress_bar(sys.stderr),
                click.progressbar(length=len(feeds), label="polling", file=sys.stderr) as bar,
            ):
                return await poll_feeds(pipeline, feeds, on_done=lambda _: bar.update(1))

    started = datetime.now()
    outcomes = asyncio.run(go())
    rows = [
        {
            "feed": o.feed.name,
            "status": o.update.status,
            "entries": o.update.entries_in_feed,
            "new": len(o.update.seen_entry_ids),
            "extracted": sum(1 for a in o.update.articles if a.body_source == "page"),
            "matched": sum(1 for a in o.update.articles if a.matches),
            "seconds": round(o.update.duration_s, 2),
            "error": o.update.error or "",
        }
        for o in outcomes
    ]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    echo_table(rows)
    total = lambda key: sum(r[key] for r in rows)
    failed = sum(1 for r in rows if r["status"] in ("error", "offline"))
    click.echo(
        f"{len(rows)} feeds ({failed} failed), {total('entries')} entries, {total('new')} new, "
        f"{total('extracted')} pages extracted, {total('matched')} matched, "
        f"{(datetime.now() - started).total_seconds():.1f} s"
    )


@click.command()
@click.pass_obj
def check(app: App) -> None:
    """Check the config file: every error at once, with its key path; exit status 2 when there are errors.

    \b
    Example:
        watcher --config config.toml check
    """
    config = app.config  # raises ConfigError with every problem
    warnings = config.missing_secrets(os.environ)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(
        f"{app.config_path}: ok ({len(config.feeds)} feeds, {len(config.topics)} topics, {len(config.channels)} channels)"
    )


@click.command()
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per feed (with --check: the verdict as /healthz gives it)."
)
@click.option("--check", is_flag=True, help="Print only a verdict; exit 1 when watcher is failing (for health checks).")
@click.pass_obj
def status(app: App, as_json: bool, check: bool) -> None:
    """Show each feed's health (last success, next check, errors, stored matches) and the outbox.

    --check prints ok, degraded or failing with the reasons, the verdict /healthz gives (see the README).

    \b
    Example:
        watcher status --json | jq 'select(.error_count > 0)'
    """
    if check:
        health = _health_check(app)
        click.echo(json.dumps(health.as_dict(), ensure_ascii=False) if as_json else health.line())
        sys.exit(1 if health.status == "failing" else 0)
    store = app.store
    rows = store.feed_status()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    now = datetime.now().astimezone()
    try:
        configured = {f.name for f in app.config.feeds}
    except ConfigError:
        configured = {r["name"] for r in rows}  # a broken config: say "disabled" rather than guess "removed"
    table = [
        {
            # A feed taken out of the config keeps its rows (its articles stay searchable) but is never polled.
            "feed": r["name"]
            + ("" if r["enabled"] else " (disabled)" if r["name"] in configured else " (removed from the config)"),
            "last success": ago(r["last_success_at"], now),
            "next check": ago(r["next_check_at"], now) if r["enabled"] else "never",
            "errors": r["error_count"],
            "matches": r["matches"],
            "last error": display_text(r["last_error"], 60)
            + (f"  (moved to {r['moved_to']})" if r["moved_to"] else ""),
        }
        for r in rows
    ]
    echo_table(table)
    walled = [r for r in rows if r["pages_walled"]]
    if walled:
        click.echo("\narticle pages behind a wall (the feed's own text is used; `extract = false` stops the fetches):")
        for r in walled:
            click.echo(f"  {r['name']}: {r['pages_walled']} of {r['pages_tried']} pages ({r['walls']})")
    counts = store.counts()
    click.echo(
        f"{counts['feeds']} feeds, {counts['articles']} matched articles, {counts['matches']} matches; "
        f"outbox: {counts['pending']} pending, {counts['dead']} failed (see `watcher alerts list --failed`)"
    )
    workers = store.workers()
    if workers:
        click.echo("\nworkers (watcher processes sharing this database):")
        for w in workers:
            click.echo(
                f"  {w['host']} pid {w['pid']}: last tick {ago(w['last_tick_at'], now)}, "
                f"{w['feeds_polled']} feeds polled, {w['leases']} leases held"
            )
    latest = store.recent_matches(datetime(1970, 1, 1).astimezone(), limit=5)
    if latest:
        click.echo("\nlatest matches (why they matched: the terms found):")
        for match in latest:
            click.echo(f"  {click.style(match.topic, fg='cyan')}  {match.title[:90]}")
            click.echo(f"      terms: {', '.join(match.terms[:8])}   {match.url}")
    for line in status_lines(store):
        click.echo(line)


def _health_check(app: App) -> Health:
    """The same verdict as /healthz (ops.py), from the database; a config that does not load is a reason, not a crash."""
    from ..ops import assess_health

    config, config_error = None, None
    try:
        config = app.config
    except ConfigError as e:
        config_error = f"{app.config_path}: {len(e.problems)} problem(s); `watcher check` lists them"
    return assess_health(app.store, config, datetime.now().astimezone(), config_error=config_error)


@click.command()
@click.argument("path", default=DEFAULT_CONFIG, type=click.Path(dir_okay=False))
@click.option("--empty", is_flag=True, help="Without the default feeds: add your own with `watcher feeds add`.")
def init(path: str, empty: bool) -> None:
    """Write a starter config file (the default feeds and topics); never overwrites an existing file.

    \b
    Example:
        watcher init my-config.toml
        watcher init --empty my-config.toml
    """
    target = Path(path)
    if target.exists():
        raise click.ClickException(f"{path} exists; not overwriting it")
    text = default_config_text()
    target.write_text(without_feeds(text) if empty else text, encoding="utf-8")
    click.echo(f"wrote {path}; check it with `watcher --config {path} check`")
    if empty:
        click.echo(f"it has no feeds yet: add one with `watcher --config {path} feeds add https://example.org/`")


def without_feeds(text: str) -> str:
    """The starter config with its [[feeds]] tables left out (the comments that explain them stay)."""
    out, in_feed = [], False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == "[[feeds]]":
            in_feed = True
            continue
        if in_feed and stripped.startswith(("[", "# ---")):
            in_feed = False
        if in_feed:
            continue
        out.append(line)
    # Outlet-group comments ("# Korea") of the feeds left out are dropped with them, and so is the note on which of
    # them carry full text.
    text = re.sub(r"#\n# Full text or not:.*?\n(?=\n)", "", "".join(out), flags=re.S)
    return re.sub(r"\n(?:# [A-Z][^\n-]*\n)+(?=\n|# ---)", "\n", text)


def default_config_text() -> str:
    return resources.files("watcher").joinpath("default_config.toml").read_text(encoding="utf-8")
