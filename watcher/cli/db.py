"""`watcher db copy`: move an installation's SQLite file into PostgreSQL (docs/schema.md, "PostgreSQL")."""

from __future__ import annotations

import sys

import click

from ..store.copy import copy_to_postgres, rows_to_copy


@click.group()
def db() -> None:
    """The database itself: copy it to PostgreSQL.

    \b
    Example:
        watcher db copy watcher.db postgresql://watcher@db.internal/watcher
    """


@db.command("copy")
@click.argument("sqlite_file", type=click.Path(dir_okay=False))
@click.argument("postgres_url")
@click.option("--password-env", default=None, help="Environment variable holding the password (else PGPASSWORD).")
def copy(sqlite_file: str, postgres_url: str, password_env: str | None) -> None:
    """Copy every row of SQLITE_FILE into the PostgreSQL database POSTGRES_URL, keeping ids.

    Idempotent and resumable: rows already there are skipped, so run it again after an interruption. Stop
    watcher on both sides first.

    \b
    Example:
        PGPASSWORD=... watcher db copy watcher.db postgresql://watcher@127.0.0.1/watcher
    """
    total = sum(rows_to_copy(sqlite_file).values())
    with click.progressbar(length=total, label="copying", file=sys.stderr) as bar:
        added = copy_to_postgres(
            sqlite_file, postgres_url, password_env=password_env, progress=lambda _table, n: bar.update(n)
        )
    new = sum(added.values())
    click.echo(f"{new} rows copied, {total - new} already there")
