"""`watcher ui`: the analyst's page against the database and config alone, without the daemon (web/)."""

from __future__ import annotations

import asyncio
import os
import signal

import click

from .app import App

DEFAULT_ADDRESS = "127.0.0.1:8710"


@click.command()
@click.option(
    "--http",
    "address",
    envvar="WATCHER_UI_HTTP",
    metavar="HOST:PORT",
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="Where to serve the page (or WATCHER_UI_HTTP). Any address but loopback needs [watcher] web_password_env.",
)
@click.pass_obj
def ui(app: App, address: str) -> None:
    """Serve the analyst's page (matches, rules, feeds, alerts) on the database, without polling.

    The daemon serves the same page with `watcher run --http`; this one is for a database copied elsewhere, or a
    daemon run without --http. Edits (rules, feeds) are written to the config file, which a running daemon
    reloads within seconds. Stop with Ctrl-C.

    \b
    Example:
        watcher --config config.toml ui --http 127.0.0.1:8710
    """
    from ..ops import parse_address

    try:
        parse_address(address)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--http") from None
    asyncio.run(_serve(app, address))


async def _serve(app: App, address: str) -> None:
    from ..pipeline import utcnow
    from ..runtime import Runtime
    from ..web import ConfigFile, WebContext, WebServer, access_for, build_app

    config, store = app.config, app.store
    store.sync_feeds(config.feeds, config.schedule.interval, utcnow())
    source = ConfigFile(config)
    host = address.rsplit(":", 1)[0].strip("[]")
    access = access_for(host, config.web_password_env, config.public_url, os.environ)
    if not access.pages_enabled:
        raise click.ClickException(
            f"{address} is not a loopback address: set [watcher] web_password_env and that variable "
            "(or use an SSH tunnel to 127.0.0.1; README, 'The analyst's page')"
        )

    async def written(new) -> None:  # the feeds table follows the config, as the daemon's reload makes it
        await store.call(store.sync_feeds, new.feeds, new.schedule.interval, utcnow())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Runtime(config) as runtime:
        context = WebContext(store, source, runtime, access, config_written=written, clock=utcnow)
        server = WebServer(address, build_app(context))
        try:
            url = await server.start()
        except OSError as e:
            raise click.ClickException(f"cannot listen on {address}: {e.strerror or e}") from None
        click.echo(f"watcher ui: {url}/ (Ctrl-C stops)", err=True)
        try:
            await stop.wait()
        finally:
            await server.close()
