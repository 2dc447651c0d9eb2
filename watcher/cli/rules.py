"""Commands about topics and stored articles: `rules test`, `rematch`, `search`, `export`."""

from __future__ import annotations

import asyncio
import csv
import difflib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ..config import parse_duration
from ..errors import FetchError, RuleError
from .app import App


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.now(UTC) - parse_duration(value)
    except ValueError:
        raise click.BadParameter(
            f"expected a duration such as 24h or 7d, found {value!r}", param_hint="--since"
        ) from None


@click.group()
def rules() -> None:
    """Try topic rules on texts before trusting them."""


@rules.command("test")
@click.argument("rule_or_topic")
@click.option("--text", help="The text to try the rule on.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="A text (or HTML) file.")
@click.option("--url", help="An article URL: fetched and extracted as the daemon would.")
@click.option("--title", default="", help="A title to go with --text or --file.")
@click.option("--explain", "show_tree", is_flag=True, help="Also show each part of the rule and whether it held.")
@click.pass_obj
def rules_test(
    app: App, rule_or_topic: str, text: str | None, path: str | None, url: str | None, title: str, show_tree: bool
) -> None:
    """Show whether a rule (or a topic of the config, by name) matches a text: the verdict, the terms found and a
    snippet; --explain adds each part of the rule and whether it held.

    \b
    Examples:
        watcher rules test troop_deployment --text "North Korea sent 3,000 troops to Russia" --explain
        watcher rules test 'drone* NEAR/10 (supply OR produce)' --url https://example.org/story
    """
    from ..rules import TopicConfig, compile_topic, explain

    if sum(x is not None for x in (text, path, url)) != 1:
        raise click.UsageError("give exactly one of --text, --file or --url")
    config = app.config
    topic_config = next((t for t in config.topics if t.name == rule_or_topic), None)
    if topic_config is None:
        topic_config = TopicConfig(name="(rule)", rule=rule_or_topic)
    try:
        topic = compile_topic(topic_config, config.terms)
    except RuleError as e:
        raise click.ClickException(e.describe()) from None
    if path is not None:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        if text.lstrip().startswith("<"):
            text, title = _extract(text.encode("utf-8"), f"file://{path}", title)
    elif url is not None:
        text, title = _fetch_and_extract(app, url, title)
    result = explain(topic, title, text or "")
    click.echo(result.render(tree=show_tree))
    sys.exit(0 if result.matched else 1)


def _extract(content: bytes, url: str, title: str) -> tuple[str, str]:
    from ..extract import extract_text

    extracted = extract_text(content, url)
    if extracted is None:
        raise click.ClickException(f"no article text found in {url}")
    return extracted.text, title or extracted.title


def _fetch_and_extract(app: App, url: str, title: str) -> tuple[str, str]:
    from ..body import decoded_page
    from ..fetch import Fetcher

    async def fetch():
        async with Fetcher(app.config.fetch) as fetcher:
            return await fetcher.fetch_page(url)

    page = asyncio.run(fetch())
    try:
        content = decoded_page(page)
    except FetchError as e:
        raise click.ClickException(str(e)) from None
    return _extract(content, page.url, title)


@click.command()
@click.option("--topic", "topic_names", multiple=True, help="Only this topic (repeatable); default: every topic.")
@click.option("--no-alerts", is_flag=True, help="Record new matches without queueing alerts for them.")
@click.pass_obj
def rematch(app: App, topic_names: tuple[str, ...], no_alerts: bool) -> None:
    """Apply the config's current rules to stored articles.

    New matches are added (and alert, unless --no-alerts); a topic that no longer matches is marked retracted,
    not deleted. Unmatched articles are kept for [extract] keep_unmatched, so a new or widened rule also
    finds the last few days' news.

    \b
    Example:
        watcher rematch --topic drone_cooperation
    """
    from ..learn.retrain import models_in_use
    from ..rematch import rematch as rematch_articles

    config, store = app.config, app.store
    known = {t.name for t in config.topics}
    unknown = [t for t in topic_names if t not in known]
    if unknown:
        raise click.BadParameter(f"no topic named {', '.join(map(repr, unknown))}", param_hint="--topic")
    topics = [t for t in config.compiled_topics if not topic_names or t.name in topic_names]
    routes = {} if no_alerts else config.routes()
    total = store.count_articles()
    with click.progressbar(length=total, label="rematching", file=sys.stderr) as bar:
        result = rematch_articles(
            store, topics, routes, datetime.now(UTC), on_batch=bar.update, models=models_in_use(config, store)
        )
    added, retracted, queued = result.added, result.retracted, result.queued
    click.echo(f"{total} articles checked: {added} new matches, {retracted} retracted, {queued} alerts queued")


@click.command()
@click.argument("query")
@click.option("--topic", help="Only articles that match this topic.")
@click.option("--feed", help="Only articles from this feed (by name).")
@click.option("--since", help="Only articles published within this duration, e.g. 24h, 7d.")
@click.option("--limit", default=20, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_obj
def search(app: App, query: str, topic: str | None, feed: str | None, since: str | None, limit: int, fmt: str) -> None:
    """Search stored articles, best first: words (their forms too: drones finds drone), hyphenated words,
    "phrases", AND, OR, NOT in capitals, prefix*, parentheses.

    \b
    Example:
        watcher search '"North Korean" AND troops' --since 7d --format json
    """
    _check_names(app, topic=topic, feed=feed)
    rows = app.store.search(query, topic=topic, feed=feed, since=_since(since), limit=limit)
    if fmt == "table":
        for row in rows:
            click.echo(click.style(row["title"], bold=True) + f"  [{row['topics'] or 'unmatched'}]")
            click.echo(f"  {row['url']}  ({row['feeds'] or ''}; {row['published_at'] or 'undated'})")
            click.echo("  " + _mark(row["snippet"]))
        click.echo(f"{len(rows)} result(s)")
    else:
        _write_rows(rows, fmt)


@click.command()
@click.option("--topic", help="Only this topic.")
@click.option("--since", help="Only matches made within this duration, e.g. 30d.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.pass_obj
def export(app: App, topic: str | None, since: str | None, fmt: str) -> None:
    """Write every (non-retracted) match with its article as CSV or JSON lines, for spreadsheets and pandas.

    \b
    Example:
        watcher export --topic troop_deployment --since 30d > troops.csv
    """
    _check_names(app, topic=topic)
    _write_rows(app.store.export_matches(topic=topic, since=_since(since)), fmt)


def _check_names(app: App, *, topic: str | None = None, feed: str | None = None) -> None:
    """An unknown --topic or --feed is a mistake to point out, not an empty result (exit 0) to puzzle over."""
    if topic is not None:
        topics = {t.name for t in app.config.topics} | set(app.store.topic_names())
        if topic not in topics:
            raise click.BadParameter(
                f"no topic named {topic!r}; known: {', '.join(sorted(topics)) or 'none'}", param_hint="--topic"
            )
    if feed is not None:
        feeds = {f.name for f in app.config.feeds} | {r["name"] for r in app.store.feed_status()}
        if feed not in feeds:
            close = difflib.get_close_matches(feed, sorted(feeds), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; see `watcher status`"
            raise click.BadParameter(f"no feed named {feed!r}{hint}", param_hint="--feed")


def _write_rows(rows, fmt: str) -> None:
    writer = None
    for row in rows:
        if fmt == "json":
            if isinstance(row.get("terms"), str):  # stored as JSON text: a list in JSON output, not a string
                row = {**row, "terms": json.loads(row["terms"])}
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        if writer is None:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)


def _mark(snippet: str) -> str:
    """[[term]] marks as bold where the terminal shows it."""
    parts = snippet.replace("\n", " ").split("[[")
    out = parts[0]
    for part in parts[1:]:
        term, _, rest = part.partition("]]")
        out += click.style(term, bold=True, fg="yellow") + rest
    return out
