"""Training a topic's model from labelled examples: the one module that imports scikit-learn (and scipy).

Logistic regression (liblinear, balanced classes: a topic has few yes labels) over the named features of
features.py. The result is plain numbers (TopicModel: a bias and weights by name); the learner's objects never
leave this module and nothing is pickled. Word and character features seen in fewer than MIN_DF examples are
dropped: they cannot generalise and would only make the stored model larger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..errors import LearnError
from ..rules import ArticleText, CompiledTopic, match_text
from .features import rule_features, text_features, weighted
from .model import TopicModel

MIN_DF = 2
REGULARISATION_C = 10.0  # inverse strength; chosen on one half of our labelled set, checked on the other
MIN_EACH_CLASS = 2  # a model needs yes and no labels to learn anything


@dataclass(frozen=True, slots=True)
class Example:
    title: str
    text: str
    label: bool


@dataclass(frozen=True, slots=True)
class Featurised:
    rule_matched: bool
    pairs: tuple[tuple[str, float], ...]


def featurise(topic: CompiledTopic, title: str, text: str) -> Featurised:
    art = ArticleText(title, text)
    matched = any(m.topic == topic.name for m in match_text((topic,), art))
    return Featurised(matched, tuple(weighted(text_features(art), rule_features(topic, art, matched))))


def can_train(examples: Sequence[Example]) -> bool:
    yes = sum(1 for e in examples if e.label)
    return yes >= MIN_EACH_CLASS and len(examples) - yes >= MIN_EACH_CLASS


def train(
    topic: CompiledTopic,
    examples: Sequence[Example],
    *,
    now: datetime | None = None,
    labels_version: str = "",
    featurised: Sequence[Featurised] | None = None,
    c: float = REGULARISATION_C,
) -> TopicModel:
    """A model for `topic` from its labelled examples; raises LearnError without both yes and no labels."""
    if not can_train(examples):
        raise LearnError(
            f"topic {topic.name}: a model needs at least {MIN_EACH_CLASS} yes and {MIN_EACH_CLASS} no labels"
        )
    rows = list(featurised) if featurised is not None else [featurise(topic, e.title, e.text) for e in examples]
    bias, weights = _fit(rows, [e.label for e in examples], c)
    return TopicModel(
        topic=topic.name,
        bias=bias,
        weights=weights,
        labels=len(examples),
        positives=sum(1 for e in examples if e.label),
        trained_at=now,
        labels_version=labels_version,
    )


def _fit(rows: Sequence[Featurised], labels: Sequence[bool], c: float) -> tuple[float, dict[str, float]]:
    try:
        import numpy as np
        from scipy.sparse import csr_matrix
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:
        raise LearnError(f"training needs scikit-learn: pip install 'watcher[learn]' ({e})") from e

    df = Counter(name for row in rows for name, _ in row.pairs)
    kept = sorted(n for n, k in df.items() if k >= MIN_DF or n.startswith("rule:"))  # sorted: the same model every run
    vocabulary = {name: i for i, name in enumerate(kept)}
    data, indices, indptr = [], [], [0]
    for row in rows:
        for name, value in row.pairs:
            j = vocabulary.get(name)
            if j is not None:
                indices.append(j)
                data.append(value)
        indptr.append(len(indices))
    matrix = csr_matrix(
        (np.array(data, dtype=np.float64), np.array(indices, dtype=np.int64), np.array(indptr, dtype=np.int64)),
        shape=(len(rows), max(1, len(vocabulary))),
    )
    # tol 1e-3 (liblinear's default is 1e-4): 0.8 s instead of 2.8 s on 3,000 labels, same figures on both halves
    learner = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", tol=1e-3, max_iter=1000)
    learner.fit(matrix, np.array(labels, dtype=bool))
    coef = learner.coef_[0]
    names = list(vocabulary)
    weights = {names[j]: round(float(coef[j]), 6) for j in np.flatnonzero(np.abs(coef) > 1e-6)}
    return float(learner.intercept_[0]), weights


def cross_validated(
    topic: CompiledTopic, examples: Sequence[Example], *, folds: int = 5, seed: int = 0, c: float = REGULARISATION_C
) -> list[tuple[bool, float]] | None:
    """(rule matched, model probability) for every example, each from a model trained on the other folds;
    None when there are too few labels of either kind to cut into folds."""
    try:
        from sklearn.model_selection import StratifiedKFold
    except ImportError as e:
        raise LearnError(f"cross-validation needs scikit-learn: pip install 'watcher[learn]' ({e})") from e

    labels = [e.label for e in examples]
    yes = sum(labels)
    folds = min(folds, yes, len(labels) - yes)
    if folds < 2:
        return None
    rows = [featurise(topic, e.title, e.text) for e in examples]
    out: list[tuple[bool, float]] = [(r.rule_matched, 0.0) for r in rows]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(rows, labels):
        train_examples = [examples[i] for i in train_idx]
        if not can_train(train_examples):
            return None
        model = train(topic, train_examples, featurised=[rows[i] for i in train_idx], c=c)
        for i in test_idx:
            out[i] = (rows[i].rule_matched, model.probability(rows[i].pairs))
    return out
