"""The `watcher` command: a thin click layer over the library. Each command's help ends with an example.

app.py     the App on the click context, the error-to-message group, the table printer
core.py    run, poll, check, status, init
feeds.py   feeds add/list/remove/import/export, serve (Datasette)
rules.py   rules test, rematch, search, export
alerts.py  digest preview/send, alerts test/list/retry
labels.py  label, labels list/import/export/train, topics evaluate
stories.py stories list, merge, split
db.py      db copy (SQLite to PostgreSQL)
ui.py      ui (the analyst's page without the daemon)
"""

from __future__ import annotations

import click

from .. import __version__
from . import alerts, core, db, feeds, labels, rules, stories, ui
from .app import DEFAULT_CONFIG, App, WatcherGroup


@click.group(cls=WatcherGroup)
@click.option(
    "--config",
    "config_path",
    envvar="WATCHER_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Config file (or WATCHER_CONFIG).",
)
@click.option(
    "--db",
    "db_path",
    envvar="WATCHER_DB",
    default=None,
    help="SQLite file (or WATCHER_DB); default: [watcher] database.",
)
@click.option(
    "--log-format",
    envvar="WATCHER_LOG_FORMAT",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or JSON (or WATCHER_LOG_FORMAT).",
)
@click.option(
    "--log-level",
    envvar="WATCHER_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Overrides [watcher] log_level (or WATCHER_LOG_LEVEL).",
)
@click.version_option(__version__, prog_name="watcher")
@click.pass_context
def main(ctx: click.Context, config_path: str, db_path: str | None, log_format: str, log_level: str | None) -> None:
    """watcher: polls news feeds, keeps the articles that match your topics in SQLite, and alerts you.

    \b
    Example:
        watcher --config config.toml run
    """
    ctx.obj = App(config_path, db_path)
    ctx.obj.extras.update(log_format=log_format, log_level=log_level)
    ctx.call_on_close(ctx.obj.close)


# The modules keep their names (watcher.cli.feeds is the module, not the `feeds` group).
for _command in (
    core.run, core.poll, core.check, core.status, core.init,
    alerts.digest, alerts.alerts,
    rules.rules, rules.rematch, rules.search, rules.export,
    feeds.feeds, feeds.serve,
    labels.label, labels.labels, labels.topics,
    stories.stories,
    db.db,
    ui.ui,
):  # fmt: skip
    main.add_command(_command)
