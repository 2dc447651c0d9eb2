"""`watcher feeds add/list/remove/import/export` and `watcher serve`: feeds managed from the command line.

Each edit goes through config_edit.py (comments kept, checked, atomic), and a running daemon picks it up
within seconds (it watches the file) or at once on SIGHUP. Nothing here writes to the database: the daemon's
next sync adds, updates or disables the feed rows, so their history is never lost to a typo.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import click

from ..config import Config, parse_duration
from ..config_edit import NewFeed, add_feeds, remove_feed
from ..errors import WatcherError
from ..opml import OpmlFeed, read_opml, write_opml
from .app import App, echo_table

if TYPE_CHECKING:  # imported where used: every command would pay for httpx and feedparser otherwise
    from ..discover import Discovery

MAX_NAME = 80  # a page title can be a paragraph; a feed name is a label in tables and alerts


@click.group()
def feeds() -> None:
    """Add, list, remove, import and export the feeds of config.toml (comments and layout are kept).

    \b
    Example:
        watcher feeds add https://www.38north.org/ --interval 1h
    """


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="The feed's name in the config (default: the feed's own title).")
@click.option("--interval", help="Time between polls, e.g. 30m or 2h (default: [schedule] interval).")
@click.option(
    "--pick", type=click.IntRange(min=1), help="Take the Nth feed the page announces (as listed by a first run)."
)
@click.pass_obj
def add_command(app: App, url: str, name: str | None, interval: str | None, pick: int | None) -> None:
    """Add a feed, given its URL or the address of any page of the site.

    For a page, watcher looks for the feeds it announces (<link rel="alternate">), then at the usual places
    (/feed, /rss.xml, /atom.xml, ...), and adds the first one that parses; the others are listed, and --pick
    takes another. A running daemon polls the new feed within seconds.

    \b
    Example:
        watcher feeds add https://www.38north.org/ --interval 1h
    """
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise click.BadParameter("expected an http:// or https:// address", param_hint="URL")
    if interval is not None:
        _check_interval(interval)
    config = app.config
    found = asyncio.run(_discover(config, url, pick))
    existing = {f.url: f.name for f in config.feeds}
    if found.url in existing:
        raise click.BadParameter(f"{found.url} is in the config already, as {existing[found.url]!r}", param_hint="URL")
    chosen = _clean_name(name or found.title or urlsplit(found.url).hostname or found.url)
    if chosen in {f.name for f in config.feeds}:
        raise click.BadParameter(
            f"a feed named {chosen!r} exists; choose another name with --name", param_hint="--name"
        )
    add_feeds(app.config_path, [NewFeed(chosen, found.url, interval)])
    how = {"feed": "the address is a feed", "link": "announced by the page", "path": "found at a usual path"}[
        found.found_by
    ]
    click.echo(f"added {chosen!r}: {found.url} ({how}; {found.entries} entries now)")
    others = [(i, link) for i, link in enumerate(found.links, start=1) if link.url != found.url]
    if others:
        click.echo("the page also announces:")
        for i, link in others:
            click.echo(f"  {i}. {link.title or '(no title)'}  {link.url}")
        click.echo(f"to take one of those instead: watcher feeds remove {chosen!r} && watcher feeds add {url} --pick N")


async def _discover(config: Config, url: str, pick: int | None) -> Discovery:
    from ..discover import discover_feed
    from ..fetch import Fetcher

    async with Fetcher(config.fetch) as fetcher:
        return await discover_feed(fetcher, url, pick=pick)


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per feed.")
@click.pass_obj
def list_command(app: App, as_json: bool) -> None:
    """List the config's feeds with their interval and, once the daemon has polled them, their health.

    \b
    Example:
        watcher feeds list --json | jq -r 'select(.error_count > 0) | .name'
    """
    config = app.config
    # Only read a database that exists: listing feeds must not create one beside a fresh config.
    health = (
        {r["name"]: r for r in app.store.feed_status()}
        if not app.db_is_local_file or Path(app.db_path).exists()
        else {}
    )
    rows = []
    for feed in config.feeds:
        h = health.get(feed.name, {})
        rows.append(
            {
                "name": feed.name,
                "url": feed.url,
                "interval": _duration_text(config.feed_interval(feed)) + ("" if feed.interval else " (default)"),
                "interval_s": int(config.feed_interval(feed).total_seconds()),
                "enabled": feed.enabled,
                "extract": feed.extract,
                "status": h.get("last_status") or "new",
                "error_count": h.get("error_count", 0),
                "last_success_at": h.get("last_success_at"),
                "last_error": h.get("last_error"),
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    echo_table(
        [
            {
                "name": r["name"] + ("" if r["enabled"] else " (disabled)"),
                "status": r["status"],
                "errors": r["error_count"],
                "interval": r["interval"],
                "url": r["url"],
            }
            for r in rows
        ]
    )
    click.echo(f"{len(rows)} feeds in {app.config_path}")


@feeds.command("remove")
@click.argument("name")
@click.pass_obj
def remove_command(app: App, name: str) -> None:
    """Remove a feed from the config. Its articles and matches stay in the database (the feed is disabled).

    \b
    Example:
        watcher feeds remove "Japan Today"
    """
    names = [f.name for f in app.config.feeds]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; see `watcher feeds list`"
        raise click.BadParameter(f"no feed named {name!r}{hint}", param_hint="NAME")
    remove_feed(app.config_path, name)
    click.echo(f"removed {name!r} from {app.config_path}; its stored articles stay searchable")


@feeds.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--check", is_flag=True, help="Fetch each feed first and add only those that parse.")
@click.option("--interval", help="Time between polls for the imported feeds (default: [schedule] interval).")
@click.option("--dry-run", is_flag=True, help="Show what would be added; change nothing.")
@click.pass_obj
def import_command(app: App, file: Any, check: bool, interval: str | None, dry_run: bool) -> None:
    """Add the feeds of an OPML file (a feed reader's export); nested folders are read, duplicates skipped.

    A feed whose URL is in the config already, or earlier in the file, is skipped; names come from the
    outline's title (else its text) and are made unique.

    \b
    Example:
        watcher feeds import subscriptions.opml --check
    """
    if interval is not None:
        _check_interval(interval)
    config = app.config
    listed = read_opml(file.read())
    known_urls = {f.url: f.name for f in config.feeds}
    names = {f.name for f in config.feeds}
    planned: list[NewFeed] = []
    skipped: list[tuple[str, str, str]] = []  # (name, url, why)
    with click.progressbar(listed, label="reading", file=sys.stderr) as bar:
        for item in bar:
            if item.url in known_urls:
                skipped.append((item.name, item.url, f"in the config already, as {known_urls[item.url]!r}"))
                continue
            name = _unique_name(_clean_name(item.name), item.url, names)
            names.add(name)
            known_urls[item.url] = name
            planned.append(NewFeed(name, item.url, interval))
    unreachable_note = ""
    if check and planned:
        checked = len(planned)
        planned, failed, unreachable = asyncio.run(_check_feeds(config, planned))
        skipped += failed
        if not planned and unreachable == checked:
            # Every feed failed to resolve or connect: that is this machine's network, not 200 broken feeds.
            unreachable_note = (
                f"none of the {checked} feeds could be reached (DNS or connection failures): is the network down? "
                "Try again when it is back, or import without --check"
            )
    for name, url, why in skipped:
        click.echo(f"skipped {name!r} ({url}): {why}")
    if dry_run:
        for feed in planned:
            click.echo(f"would add {feed.name!r}: {feed.url}")
        click.echo(f"dry run: {len(planned)} feeds would be added, {len(skipped)} skipped")
        return
    if planned:
        add_feeds(app.config_path, planned)
    click.echo(f"added {len(planned)} feeds to {app.config_path}, skipped {len(skipped)}")
    if unreachable_note:
        click.echo(f"warning: {unreachable_note}", err=True)
        raise SystemExit(1)


async def _check_feeds(config: Config, planned: list[NewFeed]) -> tuple[list[NewFeed], list[tuple[str, str, str]], int]:
    """Fetch and parse every planned feed concurrently (the fetcher's limits apply), with a progress bar.

    Returns the good feeds, the failed ones with why, and how many failed to resolve or connect."""
    from ..errors import FetchError
    from ..fetch import Fetcher
    from ..models import NETWORK_FAILURES, FeedState, FetchedFeed
    from ..parse import parse_feed

    async with Fetcher(config.fetch) as fetcher:
        with click.progressbar(length=len(planned), label="checking", file=sys.stderr) as bar:
            unreachable = 0

            async def one(feed: NewFeed) -> str | None:
                nonlocal unreachable
                try:
                    fetched = await fetcher.fetch_feed(FeedState(feed.url))
                    assert isinstance(fetched, FetchedFeed)
                    await asyncio.to_thread(parse_feed, fetched)
                    return None
                except WatcherError as e:
                    if isinstance(e, FetchError) and e.kind in NETWORK_FAILURES:
                        unreachable += 1
                    return str(e)
                finally:
                    bar.update(1)

            errors = await asyncio.gather(*(one(f) for f in planned))
    good = [f for f, e in zip(planned, errors) if e is None]
    bad = [(f.name, f.url, f"not added: {e}") for f, e in zip(planned, errors) if e is not None]
    return good, bad, unreachable


@feeds.command("export")
@click.option(
    "--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="Write here instead of stdout."
)
@click.pass_obj
def export_command(app: App, output: TextIO) -> None:
    """Write the config's feeds as OPML 2.0, for a feed reader or another watcher.

    \b
    Example:
        watcher feeds export > subscriptions.opml
    """
    config = app.config
    items = [OpmlFeed(f.name, f.url) for f in config.feeds]
    output.write(write_opml(items, title=f"watcher feeds ({Path(app.config_path).name})", now=datetime.now(UTC)))


# --- Datasette ---------------------------------------------------------------------------------------------------


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.argument("datasette_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def serve(app: App, host: str, port: int, datasette_args: tuple[str, ...]) -> None:
    """Browse and query the database in Datasette, with watcher's table descriptions and canned queries.

    Needs the datasette extra: pip install 'watcher[datasette]'. It reads beside the running daemon (WAL);
    arguments after -- go to `datasette serve`.

    \b
    Example:
        watcher serve --port 8001 -- --setting sql_time_limit_ms 3000
    """
    if importlib.util.find_spec("datasette") is None:
        click.echo(
            "error: Datasette is not installed. Install watcher's datasette extra:\n"
            "  pip install 'watcher[datasette]'    (in a checkout: pip install -e '.[datasette]')",
            err=True,
        )
        sys.exit(2)
    if not app.db_is_local_file:
        click.echo("error: Datasette reads SQLite files; on PostgreSQL use psql or any PostgreSQL client", err=True)
        sys.exit(2)
    db = Path(app.db_path)
    if not db.exists():
        click.echo(f"error: no database at {db}; start watcher (`watcher run` or `watcher poll`) first", err=True)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="watcher-serve-") as tmp:
        metadata = Path(tmp) / "metadata.json"
        metadata.write_text(json.dumps(datasette_metadata(db.stem), ensure_ascii=False, indent=2), encoding="utf-8")
        argv = [
            sys.executable,
            "-m",
            "datasette",
            "serve",
            str(db),
            "--metadata",
            str(metadata),
            "--host",
            host,
            "--port",
            str(port),
            *datasette_args,
        ]
        click.echo(f"starting Datasette on {db} (Ctrl-C stops it)", err=True)
        child = subprocess.Popen(argv)
        # A child, not exec: the metadata file is removed when Datasette ends. Signals meant for `watcher serve`
        # (docker stop, systemd, kill) are passed on so Datasette never outlives it.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C reached Datasette too (same process group): wait for it to stop
                continue
    stopped = code in (-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP)  # asked to stop: a clean end
    sys.exit(0 if stopped else code if code >= 0 else 128 - code)


def datasette_metadata(database: str) -> dict[str, Any]:
    """The packaged metadata (watcher/datasette_metadata.json), keyed by this database's name."""
    data = json.loads(resources.files("watcher").joinpath("datasette_metadata.json").read_text(encoding="utf-8"))
    databases = data.get("databases", {})
    if "watcher" in databases and database != "watcher":
        databases[database] = databases.pop("watcher")  # Datasette names a database after its file's stem
    return data


# --- helpers -------------------------------------------------------------------------------------------------------


def _check_interval(text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError:
        raise click.BadParameter('expected a duration such as "30m", "2h" or "1d"', param_hint="--interval") from None
    if value <= timedelta(0):
        raise click.BadParameter("expected a duration longer than zero", param_hint="--interval")
    return value


def _clean_name(text: str) -> str:
    name = " ".join(text.split())
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1].rstrip() + "…"


def _unique_name(name: str, url: str, taken: set[str]) -> str:
    """Keep `name`; if another feed has it, add the host, then a number: two 'News' feeds stay two feeds."""
    if name not in taken:
        return name
    candidate = f"{name} ({urlsplit(url).hostname})"
    n = 2
    while candidate in taken:
        candidate = f"{name} ({n})"
        n += 1
    return candidate


def _duration_text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
