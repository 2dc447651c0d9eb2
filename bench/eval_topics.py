"""Precision, recall and F1 of topic rules on a labelled JSONL, with the real matcher.

    python bench/eval_topics.py [PATH.jsonl] [--rules watcher/default_config.toml | --config config.toml]
                                [--seed 11] [--show A|B|all|none] [--no-model]

The items are split into two halves with a fixed seed: rules are written and tuned on half A and checked on half
B (a change that helps A and not B is overfitting). The script prints, for each topic, the figures of the rules on
each half and on the whole; which part of each rule produced the false alarms; and rules plus a model (learn/)
trained on one half and tested on the other. Misses and false alarms are listed for half A only, unless --show.
Each line holds uid, title, text and labels {topic: "yes" | "no" | "maybe"}. Items labelled "maybe" for a topic
are left out of that topic's figures. Topics of the rules file without labels are skipped; labels without a
topic are reported. The default PATH is DATA/topics/dev.jsonl, DATA being --data (../shared/evaldata next to the repository).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watcher.config import config_from_dict, load_config
from watcher.errors import WatcherError
from watcher.learn.evaluate import Figures, figures
from watcher.rules import compile_topic, explain, match_article

DEFAULT_DATA = REPO.parent / "shared" / "evaldata"  # from a worktree, pass --data /work/shared/evaldata
DEFAULT_RULES = REPO / "watcher" / "default_config.toml"
SEED = 11  # the split into halves: write and tune on half A, check on half B (a change that helps only A goes)


def load_topics(rules: Path | None, config: Path | None):
    if config is not None:
        cfg = load_config(config, compile_rules=False)
    else:
        with open(rules or DEFAULT_RULES, "rb") as f:
            cfg = config_from_dict(tomllib.load(f), str(rules or DEFAULT_RULES), compile_rules=False)
    return [compile_topic(t, cfg.terms) for t in cfg.topics]


def short(item: dict) -> str:
    text = (item.get("title") or "").strip() or (item.get("text") or "").strip()
    text = " ".join(text.split())
    return text[:100] + ("…" if len(text) > 100 else "")


def split_halves(items: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """Two halves, the same for everyone with the same seed: sorted by uid, then shuffled."""
    order = sorted(items, key=lambda i: str(i["uid"]))
    random.Random(seed).shuffle(order)
    middle = len(order) // 2
    return order[:middle], order[middle:]


def score(topic, items: list[dict], matched: dict) -> tuple[Figures, list[dict], list[dict], int]:
    found, labels, misses, alarms, maybe = [], [], [], [], 0
    for item in items:
        label = item.get("labels", {}).get(topic.name)
        if label not in ("yes", "no"):
            maybe += 1
            continue
        hit = topic.name in matched[item["uid"]]
        found.append(hit)
        labels.append(label == "yes")
        if label == "yes" and not hit:
            misses.append(item)
        elif label == "no" and hit:
            alarms.append(item)
    return figures(found, labels), misses, alarms, maybe


def row(name: str, part: str, f: Figures, maybe: int) -> str:
    return (
        f"{name:<20} {part:<6} {f.tp:>4} {f.fp:>4} {f.fn:>4} {f.tn:>5} {maybe:>5}"
        f" {f.precision:>9.3f} {f.recall:>7.3f} {f.f1:>6.3f}"
    )


HEADER = f"{'topic':<20} {'part':<6} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>5} {'maybe':>5} {'precision':>9} {'recall':>7} {'F1':>6}"


def clause_blame(topic, alarms: list[dict]) -> Counter:
    """Which parts of the rule held in each false alarm (the parts of its top-level OR, and its other parts)."""
    blame: Counter = Counter()
    for item in alarms:
        explanation = explain(topic, item.get("title") or "", item.get("text") or "")
        for clause in explanation.clauses:
            # The positive parts: a NOT that holds or a penalty that did not apply produced nothing.
            # At depth 1 a clause in parentheses is the whole OR of alternatives; at depth 2 it is one alternative.
            grouped = clause.depth == 1 and clause.text.startswith("(")
            positive = not grouped and not clause.text.startswith("NOT ") and "^-" not in clause.text
            if clause.depth in (1, 2) and clause.matched and positive:
                blame[clause.text[:90]] += 1
    return blame


def model_rows(topic, train_items: list[dict], test_items: list[dict], part: str) -> list[str]:
    """Rules alone and rules plus a model trained on the other half, on `test_items`."""
    from watcher.learn.evaluate import evaluate_topic, examples_for, read_labelled
    from watcher.learn.train import can_train, train

    as_lines = lambda items: [json.dumps(i) for i in items]
    train_examples = examples_for(list(read_labelled(as_lines(train_items))), topic.name)
    test_examples = examples_for(list(read_labelled(as_lines(test_items))), topic.name)
    if not can_train(train_examples) or not test_examples:
        return [f"{topic.name:<20} {part:<6} (too few labels to train)"]
    model = train(topic, train_examples)
    result = evaluate_topic(topic, test_examples, model=model, cross_validate=False)
    assert result.with_model is not None
    return [
        row(topic.name, part, result.rules, 0) + "  rules",
        row(topic.name, part, result.with_model, 0) + "  +model",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, help="labelled JSONL (default: DATA/topics/dev.jsonl)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the evaluation data (default: %(default)s)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument(
        "--rules", type=Path, help="a TOML file with [terms] and [topics.*] (default: the default rules)"
    )
    group.add_argument("--config", type=Path, help="a watcher config.toml")
    ap.add_argument("--seed", type=int, default=SEED, help="the seed of the split into halves (default: %(default)s)")
    ap.add_argument(
        "--show",
        choices=["A", "B", "all", "none"],
        default="A",
        help="whose misses and false alarms to list: the tuning half A (default), B, all or none",
    )
    ap.add_argument("--quiet", action="store_true", help="figures only (same as --show none)")
    ap.add_argument(
        "--no-model", action="store_true", help="skip rules plus model (trained on one half, tested on the other)"
    )
    args = ap.parse_args(argv)

    args.path = args.path or args.data / "topics" / "dev.jsonl"
    if not args.path.exists():
        print(f"No labelled data at {args.path}; nothing to evaluate (pass a path to a labelled JSONL).")
        return 0
    try:
        topics = load_topics(args.rules, args.config)
    except WatcherError as e:
        print(f"The rules do not compile:\n{e}", file=sys.stderr)
        return 2
    items = [json.loads(line) for line in args.path.open(encoding="utf-8") if line.strip()]
    half_a, half_b = split_halves(items, args.seed)

    started = time.perf_counter()
    matched = {}
    for item in items:
        found = match_article(topics, item.get("title") or "", item.get("text") or "")
        matched[item["uid"]] = {m.topic for m in found}
    elapsed = time.perf_counter() - started

    labelled = {name for item in items for name in item.get("labels", {})}
    print(
        f"{args.path} · {len(items)} items (halves of {len(half_a)} and {len(half_b)}, seed {args.seed})"
        f" · matched in {elapsed * 1000:.0f} ms"
    )
    print("\nRules alone")
    print(HEADER)
    details = []
    for topic in topics:
        if topic.name not in labelled:
            print(f"{topic.name:<20} (no labels in the data)")
            continue
        for part, subset in (("A", half_a), ("B", half_b), ("all", items)):
            f, misses, alarms, maybe = score(topic, subset, matched)
            print(row(topic.name, part, f, maybe))
            if part == args.show or (part == "all" and args.show == "all"):
                details.append((topic, part, misses, alarms))
    for name in sorted(labelled - {t.name for t in topics}):
        print(f"{name:<20} (labelled, but no such topic in the rules)")

    print("\nFalse alarms by the part of the rule that held (one alarm may count under several parts)")
    for topic in topics:
        if topic.name not in labelled:
            continue
        for part, subset in (("A", half_a), ("B", half_b)):
            _, _, alarms, _ = score(topic, subset, matched)
            blame = clause_blame(topic, alarms)
            print(f"{topic.name} half {part}: {len(alarms)} false alarms")
            for clause, n in blame.most_common(8):
                print(f"  {n:>3}  {clause}")

    if not args.no_model:
        print("\nRules plus model: trained on one half, tested on the other (hold_below 0.1, possible_above 0.9)")
        print(HEADER)
        for topic in topics:
            if topic.name not in labelled:
                continue
            for line in model_rows(topic, half_a, half_b, "A->B") + model_rows(topic, half_b, half_a, "B->A"):
                print(line)

    if not args.quiet and args.show != "none":
        for topic, part, misses, alarms in details:
            print(f"\n{topic.name} (half {part}): {len(misses)} missed (labelled yes, not matched)")
            for item in misses:
                print(f"  - {item['uid']}: {short(item)}")
            print(f"{topic.name} (half {part}): {len(alarms)} false alarms (labelled no, matched)")
            for item in alarms:
                print(f"  + {item['uid']}: {short(item)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
