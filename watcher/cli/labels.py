"""Teaching topics: label, labels list/import/export/train, topics evaluate (learn/ does the work)."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click

from ..learn.evaluate import Figures, LabelledItem, evaluate_topic, examples_for, read_labelled
from ..learn.model import describe_feature
from ..learn.retrain import TrainOutcome, models_in_use, retrain_changed
from ..store import NewLabel, Store
from .app import App, echo_table


def _now() -> datetime:
    return datetime.now(UTC)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return ""


def _topic_names(app: App) -> list[str]:
    return [t.name for t in app.config.topics]


def _check_topic(app: App, topic: str) -> None:
    if topic not in _topic_names(app):
        known = ", ".join(_topic_names(app)) or "none"
        raise click.BadParameter(f"no topic {topic!r} in {app.config_path} (topics: {known})", param_hint="--topic")


def _train(app: App, topics: list[str] | None = None) -> list[TrainOutcome]:
    """Retrain what changed before returning, so the next `watcher poll` uses the new models."""
    outcomes = retrain_changed(app.config, app.store, _now, topics=topics)
    for o in outcomes:
        if o.status == "trained":
            click.echo(
                f"topic {o.topic}: model trained on {o.labels} labels ({o.positives} yes) in {o.seconds:.1f} s, "
                f"{o.features} features"
            )
        else:
            click.echo(
                f"topic {o.topic}: {o.labels} labels ({o.positives} yes): a model needs yes and no labels; "
                "the rule alone decides"
            )
    return outcomes


@click.command()
@click.argument("article_id", type=int)
@click.argument("verdict", type=click.Choice(["yes", "no"]))
@click.option("--topic", "-t", required=True, help="The topic the label is for.")
@click.option("--by", help="Who labels (default: your user name).")
@click.option("--no-train", is_flag=True, help="Only store the label; the daemon retrains in the background.")
@click.pass_obj
def label(app: App, article_id: int, verdict: str, topic: str, by: str | None, no_train: bool) -> None:
    """Tell a topic whether a stored article belongs to it, and retrain the topic's model.

    "no" on a match: the match was wrong. "yes" on an article the rule missed (or a possible match in a
    digest): it belongs. Labelling the same article again replaces the label. Ids are in `watcher search`,
    the digests' possible matches and the views (matched_articles, held_back_matches, possible_matches).

    \b
    Example:
        watcher label 1234 --topic troop_deployment no
    """
    _check_topic(app, topic)
    new = app.store.label_article(article_id, topic, verdict, source="cli", who=_who(by), now=_now())
    click.echo(f"labelled article {article_id} ({new.title[:70]}) {verdict} for {topic}")
    if not no_train:
        _train(app, [topic])


@click.group()
def labels() -> None:
    """The labels topics learn from: list, import, export, train.

    \b
    Example:
        watcher labels import examples.jsonl
    """


@labels.command("list")
@click.option("--topic", "-t", help="Only this topic.")
@click.option("--limit", default=50, show_default=True, help="Newest first, at most this many.")
@click.pass_obj
def list_labels(app: App, topic: str | None, limit: int) -> None:
    """Show the newest labels, and per topic the counts and the model in use.

    \b
    Example:
        watcher labels list --topic drone_cooperation
    """
    rows = app.store.list_labels(topic=topic, limit=limit)
    echo_table(
        [
            {
                "id": r["id"],
                "topic": r["topic"],
                "label": r["label"],
                "article": r["article_id"] if r["article_id"] is not None else "-",
                "title": (r["title"] or "")[:60],
                "source": r["source"],
                "by": r["labelled_by"],
                "when": r["labelled_at"],
            }
            for r in rows
        ]
    )
    models = {m["topic"]: m for m in app.store.model_summaries()}
    for count in app.store.label_counts():
        model = models.get(count["topic"])
        state = (
            f"model trained {model['trained_at']} on {model['labels']} labels, {model['features']} features"
            if model
            else "no model (the rule alone decides)"
        )
        click.echo(f"{count['topic']}: {count['yes']} yes, {count['no']} no; {state}")


@labels.command("import")
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--topic", "-t", "only", multiple=True, help="Import only this topic's labels (repeatable).")
@click.option("--by", help="Who labelled (default: your user name).")
@click.option("--no-train", is_flag=True, help="Only store the labels; the daemon retrains in the background.")
@click.pass_obj
def import_labels(app: App, path, only: tuple[str, ...], by: str | None, no_train: bool) -> None:
    """Import labelled examples from JSON lines, then retrain the topics they touch.

    Each line: {"uid": ..., "title": ..., "text": ..., "labels": {"TOPIC": "yes" | "no" | "maybe"}} (the format
    `watcher labels export` writes; "maybe" is skipped). Examples need not be stored articles: their text is
    kept with the label. A line with the "url" of a stored article labels that article.

    \b
    Example:
        watcher labels import team-examples.jsonl --topic troop_deployment
    """
    topics = set(_topic_names(app))
    for name in only:
        _check_topic(app, name)
    items = _read_items(path)
    urls = {item.url for item in items if item.url}
    article_ids = app.store.article_ids_by_url(sorted(urls))
    who = _who(by)
    new: list[NewLabel] = []
    skipped: dict[str, int] = {}
    for item in items:
        for topic, verdict in item.labels.items():
            if verdict not in ("yes", "no") or (only and topic not in only):
                continue
            if topic not in topics:
                skipped[topic] = skipped.get(topic, 0) + 1
                continue
            key = item.url or f"import:{item.uid}"
            new.append(
                NewLabel(topic, verdict, key, item.title, item.text, "import", who, article_ids.get(item.url or ""))
            )
    count = app.store.add_labels(new, _now())
    click.echo(f"imported {count} labels from {len(items)} items")
    for topic, n in sorted(skipped.items()):
        click.echo(f"skipped {n} labels for {topic!r}: no such topic in {app.config_path}", err=True)
    if not no_train:
        _train(app, sorted({label.topic for label in new}))


@labels.command("export")
@click.option("--topic", "-t", help="Only this topic.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
@click.pass_obj
def export_labels(app: App, topic: str | None, output: Path | None) -> None:
    """Write the labels as JSON lines, the format `watcher labels import` reads.

    \b
    Example:
        watcher labels export -o labels.jsonl
    """
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        n = 0
        for item in app.store.export_labels(topic=topic):
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
            n += 1
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"wrote {n} items to {output}")


@labels.command("train")
@click.option("--topic", "-t", "only", multiple=True, help="Only this topic (repeatable).")
@click.pass_obj
def train_labels(app: App, only: tuple[str, ...]) -> None:
    """Retrain the models of topics whose labels changed (the daemon does this by itself).

    \b
    Example:
        watcher labels train
    """
    for name in only:
        _check_topic(app, name)
    if not _train(app, list(only) or None):
        click.echo("every model is up to date with its labels")


@click.group()
def topics() -> None:
    """What the topics do on labelled data.

    \b
    Example:
        watcher topics evaluate labelled.jsonl
    """


@topics.command("evaluate")
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--topic", "-t", "only", multiple=True, help="Only this topic (repeatable).")
@click.option("--folds", default=5, show_default=True, help="Folds of the cross-validation.")
@click.pass_obj
def evaluate(app: App, path, only: tuple[str, ...], folds: int) -> None:
    """Precision, recall and F1 on a labelled file: the rules alone, rules plus each topic's stored model, and
    rules plus a model trained on the file's own labels by cross-validation (what labelling would buy).

    The file has the `watcher labels import` format; "maybe" labels are left out. The stored model was
    probably trained on some of these items: its figures are then optimistic; the cross-validated ones are not.

    \b
    Example:
        watcher topics evaluate labelled.jsonl --topic troop_deployment
    """
    for name in only:
        _check_topic(app, name)
    items = _read_items(path)
    models = models_in_use(app.config, app.store)
    rows = []
    for topic in app.config.compiled_topics:
        if only and topic.name not in only:
            continue
        settings = next(t for t in app.config.topics if t.name == topic.name)
        examples = examples_for(items, topic.name)
        if not examples:
            continue
        result = evaluate_topic(
            topic,
            examples,
            model=models.get(topic.name),
            hold_below=settings.hold_below,
            possible_above=settings.possible_above,
            folds=folds,
        )
        yes = sum(1 for e in examples if e.label)
        for name, figures in (
            ("rules alone", result.rules),
            ("rules + stored model", result.with_model),
            (f"rules + model, {folds}-fold", result.cross_validated),
        ):
            rows.append(_row(topic.name, f"{len(examples)} ({yes} yes)", name, figures))
    if not rows:
        raise click.ClickException(f"{path.name}: no yes/no labels for the topics of {app.config_path}")
    echo_table(rows)


def _row(topic: str, labelled: str, how: str, f: Figures | None) -> dict[str, object]:
    if f is None:
        return {"topic": topic, "labelled": labelled, "how": how, "TP": "-", "FP": "-", "FN": "-",
                "precision": "-", "recall": "-", "F1": "-"}  # fmt: skip
    return {
        "topic": topic,
        "labelled": labelled,
        "how": how,
        "TP": f.tp,
        "FP": f.fp,
        "FN": f.fn,
        "precision": f"{f.precision:.3f}",
        "recall": f"{f.recall:.3f}",
        "F1": f"{f.f1:.3f}",
    }


def status_lines(store: Store) -> list[str]:
    """For `watcher status`: the models' calls, and the newest held-back and possible matches with why."""
    counts = store.model_call_counts()
    if not counts:
        return []
    lines = [
        f"\ntopics that learn: {counts.get('held', 0)} matches held back, {counts.get('possible', 0)} possible "
        "matches (views held_back_matches, possible_matches; `watcher label ID --topic T yes|no`)"
    ]
    for call in store.recent_model_calls(limit=5):
        what = "held back" if call["verdict"] == "held" else "possible"
        lines.append(
            f"  [{call['article_id']}] {call['topic']} {what} (p={call['probability']:.2f})  {call['title'][:80]}"
        )
        reasons = ", ".join(f"{describe_feature(n)} {w:+.2f}" for n, w in call["features"][:4])
        lines.append(
            f"      model: {reasons}"
            + (f"   rule terms: {', '.join(call['terms'][:5])}" if call["verdict"] == "held" else "")
        )
    return lines


__all__ = ["LabelledItem", "evaluate", "import_labels", "label", "labels", "status_lines", "topics"]


def _read_items(file: IO[str]) -> list[LabelledItem]:
    """A labelled JSON Lines file, or a one-line error naming it and the line at fault."""
    try:
        return list(read_labelled(file))
    except ValueError as e:
        raise click.ClickException(f"{file.name}: {e}") from None
