"""What every command shares: the App on the click context (config and store, opened on first use), the group
that turns expected errors into one line, and the table printer. Command modules import this; nothing here
imports a command module."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..config import Config, database_setting, is_database_url, load_config
from ..errors import ConfigError, WatcherError
from ..store import DATABASE_ERRORS, Store, from_db_time, open_store, recovery_advice

DEFAULT_CONFIG = "config.toml"


@dataclass
class App:
    """What every command may need, opened on first use: `ctx.obj.config`, `ctx.obj.store`."""

    config_path: str
    db_override: str | None
    _config: Config | None = None
    _store: Store | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def db_path(self) -> str:
        """The database: `--db` or WATCHER_DB, else `[watcher] database`; a SQLite path or a PostgreSQL URL."""
        if self.db_override:
            return self.db_override
        try:
            setting = self.config.database
        except ConfigError:
            setting = database_setting(self.config_path)  # status --check reports the broken config itself
        if is_database_url(setting):
            return setting
        database = Path(setting)
        # A relative database path is relative to the config file, so the daemon finds it whatever its cwd.
        return str(database if database.is_absolute() else Path(self.config_path).resolve().parent / database)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.db_path, password_env=self._password_env())
        return self._store

    def _password_env(self) -> str | None:
        try:
            return self.config.password_env or None
        except ConfigError:
            return None

    @property
    def db_is_local_file(self) -> bool:
        """A SQLite database (a file that may not exist yet), not a PostgreSQL server."""
        return not is_database_url(self.db_path)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class WatcherGroup(click.Group):
    """Turns watcher's expected errors into a clear message and exit status 2, with no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WatcherError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except DATABASE_ERRORS as e:  # a damaged file fails on the first query that reaches the damage
            app = ctx.find_object(App)
            path = app._store.path if app is not None and app._store is not None else "the database"
            click.echo(f"error: cannot read {path}: {e}; {recovery_advice(path)}", err=True)
            ctx.exit(2)


def ago(value: str | None, now: datetime) -> str:
    when = from_db_time(value)
    if when is None:
        return "never"
    seconds = (when - now).total_seconds()
    span = abs(seconds)
    text = (
        f"{span:.0f}s"
        if span < 90
        else f"{span / 60:.0f}m"
        if span < 5400
        else f"{span / 3600:.1f}h"
        if span < 172800
        else f"{span / 86400:.0f}d"
    )
    return f"in {text}" if seconds > 0 else f"{text} ago"


def echo_table(rows: list[dict[str, Any]]) -> None:
    """A plain aligned table; colour for the status column when the terminal has it."""
    if not rows:
        click.echo("(nothing)")
        return
    headers = list(rows[0])
    cells = [[str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    click.echo(
        "  ".join(
            click.style(h.ljust(w) if i < len(headers) - 1 else h, bold=True)
            for i, (h, w) in enumerate(zip(headers, widths))
        )
    )
    colours = {"ok": "green", "not-modified": "cyan", "error": "red", "offline": "yellow"}
    for row in cells:
        parts = []
        for h, c, w in zip(headers, row, widths):
            parts.append(click.style(c.ljust(w), fg=colours.get(c)) if h == "status" else c.ljust(w))
        click.echo("  ".join(parts).rstrip())
