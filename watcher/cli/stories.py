"""`watcher stories`: the news events stored, one line per story with its sources; merge and split by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from ..config import parse_duration
from ..display import display_text
from ..errors import WatcherError
from .app import echo_table


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@click.group(invoke_without_command=True)
@click.option("--topic", default=None, help="Only stories with an article matching this topic.")
@click.option("--since", default="3d", show_default=True, help="Stories with a source in this long (e.g. 12h, 7d).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per story, with every source.")
@click.pass_context
def stories(ctx: click.Context, topic: str | None, since: str, limit: int, as_json: bool) -> None:
    """Stories: one per news event, however many feeds carried it, newest first.

    \b
    Examples:
        watcher stories --topic troop_deployment --since 24h
        watcher stories merge 12 15      # story 15 is the same event as 12
        watcher stories split 481        # article 481 is another event
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        window = parse_duration(since)
    except (ValueError, WatcherError) as e:
        raise click.BadParameter(str(e), param_hint="--since") from e
    rows = ctx.obj.store.list_stories(topic=topic, since=_now() - window, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    echo_table([_line(row) for row in rows])


def _line(row: dict[str, Any]) -> dict[str, Any]:
    feeds = list(dict.fromkeys(display_text(r["feed"], 40) for r in row["reports"]))
    return {
        "id": row["id"],
        "sources": row["sources"],
        "last_seen": row["last_seen"],
        "topics": ",".join(row["topics"]),
        "headline": display_text(row["headline"], 80),
        "feeds": ", ".join(feeds[:4]) + (f" +{len(feeds) - 4}" if len(feeds) > 4 else ""),
    }


@stories.command()
@click.argument("into", type=int)
@click.argument("other", type=int)
@click.pass_obj
def merge(obj: Any, into: int, other: int) -> None:
    """Merge story OTHER into story INTO: its articles join INTO and stay there.

    \b
    Example:
        watcher stories merge 12 15
    """
    moved = obj.store.merge_stories(into, other, _now())
    click.echo(f"story {other} merged into {into}: {moved} article(s) moved")


@stories.command()
@click.argument("article", type=int)
@click.pass_obj
def split(obj: Any, article: int) -> None:
    """Take ARTICLE (an article id, see `--json`) out of its story into a story of its own.

    \b
    Example:
        watcher stories split 481
    """
    story = obj.store.split_article(article, _now())
    click.echo(f"article {article} is now story {story}")
