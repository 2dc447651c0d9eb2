"""CPU per article of the stages beside extraction: matching (in the worker) and model scoring (on a thread).

    python bench/stages.py [--data ../shared/evaldata] [--repeat 3]

Reads the labelled real news items of DATA/topics/dev.jsonl (titles and full article bodies) and the default
topics. Matching is `match_article`, what the extraction worker runs after extracting a page; model scoring is
`apply_models` with a model trained for each topic on the same items, what the pipeline runs on a thread after
the worker's call (the difference its CPU makes beside the rules'). The story decision is measured in the store
(bench/growth.py: `story_cpu_us_per_article`, at 1k and 1M stored). The fastest of `--repeat` passes counts.
The last stdout line is JSON; without the data it says so and prints `{}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from watcher.learn import apply_models
from watcher.rules import match_article


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=common.EVALDATA)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    path = args.data / "topics" / "dev.jsonl"
    if not path.exists():
        print(f"no labelled data at {path}: stages not measured (pass --data)", file=sys.stderr)
        print("{}")
        return
    _, texts, topics, models = common.labelled_topics(path)
    found = {(t, b): match_article(topics, t, b) for t, b in texts}
    match_ms = common.cpu_ms_per_item(lambda t, b: match_article(topics, t, b), texts, args.repeat)
    models_ms = common.cpu_ms_per_item(
        lambda t, b: apply_models(topics, models, (t, b), found[t, b]), texts, args.repeat
    )
    out = {
        "items": len(texts),
        "topics": len(topics),
        "median_body_words": sorted(len(b.split()) for _, b in texts)[len(texts) // 2],
        "match_cpu_ms_per_article": round(match_ms, 3),
        "models_cpu_ms_per_article": round(models_ms, 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
