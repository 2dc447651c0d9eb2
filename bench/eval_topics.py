"""Precision, recall and F1 of topic rules on a labelled JSONL, with the real matcher.

    python bench/eval_topics.py [PATH.jsonl] [--rules watcher/default_config.toml | --config config.toml]

Each line holds uid, title, text and labels {topic: "yes" | "no" | "maybe"}. Items labelled "maybe" for a topic
are left out of that topic's figures. Topics of the rules file without labels are skipped; labels without a
topic are reported. The default PATH is ../shared/evaldata/topics/dev.jsonl next to the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watcher.config import config_from_dict, load_config
from watcher.errors import WatcherError
from watcher.rules import compile_topic, match_article

DEFAULT_DATA = REPO.parent / "shared" / "evaldata" / "topics" / "dev.jsonl"
DEFAULT_RULES = REPO / "watcher" / "default_config.toml"


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA, help="labelled JSONL (default: %(default)s)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument(
        "--rules", type=Path, help="a TOML file with [terms] and [topics.*] (default: the default rules)"
    )
    group.add_argument("--config", type=Path, help="a watcher config.toml")
    ap.add_argument("--quiet", action="store_true", help="figures only, no lists of misses and false alarms")
    args = ap.parse_args(argv)

    if not args.path.exists():
        print(f"No labelled data at {args.path}; nothing to evaluate (pass a path to a labelled JSONL).")
        return 0
    try:
        topics = load_topics(args.rules, args.config)
    except WatcherError as e:
        print(f"The rules do not compile:\n{e}", file=sys.stderr)
        return 2
    items = [json.loads(line) for line in args.path.open(encoding="utf-8") if line.strip()]

    started = time.perf_counter()
    matched = {}
    for item in items:
        found = match_article(topics, item.get("title") or "", item.get("text") or "")
        matched[item["uid"]] = {m.topic for m in found}
    elapsed = time.perf_counter() - started

    labelled = {name for item in items for name in item.get("labels", {})}
    print(f"{args.path} · {len(items)} items · matched in {elapsed * 1000:.0f} ms")
    print(
        f"{'topic':<20} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>5} {'maybe':>5} {'precision':>9} {'recall':>7} {'F1':>6}"
    )
    details = []
    for topic in topics:
        if topic.name not in labelled:
            print(f"{topic.name:<20} (no labels in the data)")
            continue
        tp = fp = fn = tn = maybe = 0
        misses, alarms = [], []
        for item in items:
            label = item.get("labels", {}).get(topic.name)
            if label not in ("yes", "no"):
                maybe += 1
                continue
            hit = topic.name in matched[item["uid"]]
            if label == "yes" and hit:
                tp += 1
            elif label == "yes":
                fn += 1
                misses.append(item)
            elif hit:
                fp += 1
                alarms.append(item)
            else:
                tn += 1
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        print(f"{topic.name:<20} {tp:>4} {fp:>4} {fn:>4} {tn:>5} {maybe:>5} {p:>9.3f} {r:>7.3f} {f1:>6.3f}")
        details.append((topic.name, misses, alarms))
    for name in sorted(labelled - {t.name for t in topics}):
        print(f"{name:<20} (labelled, but no such topic in the rules)")
    if not args.quiet:
        for name, misses, alarms in details:
            print(f"\n{name}: {len(misses)} missed (labelled yes, not matched)")
            for item in misses:
                print(f"  - {item['uid']}: {short(item)}")
            print(f"{name}: {len(alarms)} false alarms (labelled no, matched)")
            for item in alarms:
                print(f"  + {item['uid']}: {short(item)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
