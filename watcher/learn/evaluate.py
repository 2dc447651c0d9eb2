"""What labelling buys, measured on a labelled file: rules alone, rules plus a model, and cross-validated.

`watcher topics evaluate` and bench/eval_topics.py print these figures. An example counts as found when the
rule matched and the model does not hold it back, or the rule missed and the model makes it a possible match
(the same decision as model.decide).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from ..rules import CompiledTopic
from .model import DEFAULT_HOLD_BELOW, DEFAULT_POSSIBLE_ABOVE, TopicModel
from .train import Example, cross_validated, featurise


@dataclass(frozen=True, slots=True)
class Figures:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def figures(found: Iterable[bool], labels: Iterable[bool]) -> Figures:
    tp = fp = fn = tn = 0
    for f, y in zip(found, labels):
        tp, fp, fn, tn = tp + (f and y), fp + (f and not y), fn + (not f and y), tn + (not f and not y)
    return Figures(tp, fp, fn, tn)


def combined(rule_matched: bool, probability: float, hold_below: float, possible_above: float) -> bool:
    """Rules plus model: a rule match stands unless held back; a miss becomes a possible match."""
    return probability >= hold_below if rule_matched else probability >= possible_above


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """A line of a labelled JSONL (the dev-set format): uid, title, text, labels {topic: yes|no|maybe}."""

    uid: str
    title: str
    text: str
    labels: dict[str, str]
    url: str = ""  # a stored article's URL (what `watcher labels export` writes for labelled articles)


def read_labelled(lines: IO[str] | Iterable[str]) -> Iterator[LabelledItem]:
    """Lines of JSON objects; blank lines skipped; a line that is not such an object raises ValueError(line no)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {number}: not JSON ({e.msg})") from None
        labels = item.get("labels") if isinstance(item, dict) else None
        if not isinstance(labels, dict):
            raise ValueError(f"line {number}: expected an object with title, text and labels {{topic: yes|no}}")
        yield LabelledItem(
            uid=str(item.get("uid") or item.get("id") or f"line-{number}"),
            title=str(item.get("title") or ""),
            text=str(item.get("text") or item.get("body") or ""),
            labels={str(k): str(v) for k, v in labels.items()},
            url=str(item.get("url") or ""),
        )


def examples_for(items: Sequence[LabelledItem], topic: str) -> list[Example]:
    """The items labelled yes or no for `topic` ("maybe" and unlabelled items are left out)."""
    return [Example(i.title, i.text, i.labels[topic] == "yes") for i in items if i.labels.get(topic) in ("yes", "no")]


@dataclass(frozen=True, slots=True)
class TopicEvaluation:
    topic: str
    examples: int
    rules: Figures
    with_model: Figures | None  # the stored (or given) model; None without one
    cross_validated: Figures | None  # a model trained on the file's own labels, fold by fold


def evaluate_topic(
    topic: CompiledTopic,
    examples: Sequence[Example],
    *,
    model: TopicModel | None = None,
    hold_below: float = DEFAULT_HOLD_BELOW,
    possible_above: float = DEFAULT_POSSIBLE_ABOVE,
    cross_validate: bool = True,
    folds: int = 5,
) -> TopicEvaluation:
    labels = [e.label for e in examples]
    rows = [featurise(topic, e.title, e.text) for e in examples]
    rules = figures((r.rule_matched for r in rows), labels)
    with_model = None
    if model is not None:
        found = (combined(r.rule_matched, model.probability(r.pairs), hold_below, possible_above) for r in rows)
        with_model = figures(found, labels)
    cv = None
    if cross_validate:
        scored = cross_validated(topic, examples, folds=folds)
        if scored is not None:
            cv = figures((combined(m, p, hold_below, possible_above) for m, p in scored), labels)
    return TopicEvaluation(topic.name, len(examples), rules, with_model, cv)
