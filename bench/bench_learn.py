"""What topics that learn cost: scoring per article beside the rules, and retraining time by number of labels.

    python bench/bench_learn.py [--data ../shared/evaldata] [--labels 1000,10000] [--repeat 3]

Reads the labelled items of DATA/topics/dev.jsonl (real news: feed summaries and full article bodies) and the
default rules. Scoring: CPU time per article of the rules alone (match_article) and of rules plus a model for
each topic (judge_article), over every item. Retraining: a topic's model trained on N labels, drawn from the
items with replacement (the time grows with the labels, not with how new they are), featurisation included.
The target (issue 11): scoring under 5% of extraction's ~27 ms CPU per page (1.4 ms); 10,000 labels in seconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import common

from watcher.learn import judge_article
from watcher.learn.train import Example, featurise, train
from watcher.rules import match_article

DEFAULT_DATA = REPO.parent / "shared" / "evaldata"
EXTRACTION_MS = 27.0  # trafilatura's CPU per real page on our machines (docs: README, Performance)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the evaluation data (default: %(default)s)")
    ap.add_argument("--labels", default="1000,10000", help="label counts to retrain on (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="scoring passes; the fastest counts (default: %(default)s)")
    args = ap.parse_args(argv)
    path = args.data / "topics" / "dev.jsonl"
    if not path.exists():
        print(f"No labelled data at {path}; nothing to measure (pass --data).")
        return 0
    items, texts, topics, models = common.labelled_topics(path)
    words = statistics.median(len(b.split()) for _, b in texts)
    print(f"{path} · {len(items)} items, median body {words:.0f} words · 2 topics\n")

    rules_ms = common.cpu_ms_per_item(lambda t, b: match_article(topics, t, b), texts, args.repeat)
    both_ms = common.cpu_ms_per_item(lambda t, b: judge_article(topics, models, t, b), texts, args.repeat)
    extra = both_ms - rules_ms
    print(f"{'scoring, CPU per article':<44} {'ms':>8} {'% of extraction':>16}")
    print(f"{'rules alone (2 topics)':<44} {rules_ms:>8.3f} {rules_ms / EXTRACTION_MS:>15.1%}")
    print(f"{'rules + a model per topic (2 topics)':<44} {both_ms:>8.3f} {both_ms / EXTRACTION_MS:>15.1%}")
    print(f"{'the models alone (difference)':<44} {extra:>8.3f} {extra / EXTRACTION_MS:>15.1%}")
    long_texts = [(t, b) for t, b in texts if len(b.split()) >= 300]
    if long_texts:
        rules_long = common.cpu_ms_per_item(lambda t, b: match_article(topics, t, b), long_texts, args.repeat)
        both_long = common.cpu_ms_per_item(lambda t, b: judge_article(topics, models, t, b), long_texts, args.repeat)
        label = f"article bodies of 300+ words ({len(long_texts)}):"
        print(f"{label:<44}")
        print(f"{'  rules alone':<44} {rules_long:>8.3f} {rules_long / EXTRACTION_MS:>15.1%}")
        print(f"{'  rules + a model per topic':<44} {both_long:>8.3f} {both_long / EXTRACTION_MS:>15.1%}")
        extra_long = both_long - rules_long
        print(f"{'  the models alone (difference)':<44} {extra_long:>8.3f} {extra_long / EXTRACTION_MS:>15.1%}")
    sizes = ", ".join(f"{name} {len(m.weights)}" for name, m in models.items())
    print(f"model sizes (features with a weight): {sizes}\n")

    topic = next(t for t in topics if t.name == "troop_deployment")
    labelled = [(t, b, i["labels"][topic.name] == "yes") for (t, b), i in zip(texts, items)
                if i["labels"].get(topic.name) in ("yes", "no")]  # fmt: skip
    rng = random.Random(0)
    print(
        f"{'retraining troop_deployment':<28} {'labels':>7} {'seconds':>8} {'featurise':>10} {'fit':>6} {'features':>9}"
    )
    for n in (int(x) for x in args.labels.split(",")):
        sample = [Example(*rng.choice(labelled)) for _ in range(n)]
        started = time.perf_counter()
        rows = [featurise(topic, e.title, e.text) for e in sample]
        featurised = time.perf_counter()
        model = train(topic, sample, featurised=rows)
        done = time.perf_counter()
        print(
            f"{'':<28} {n:>7} {done - started:>8.1f} {featurised - started:>10.1f} {done - featurised:>6.1f}"
            f" {len(model.weights):>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
