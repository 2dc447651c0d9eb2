"""Pairwise precision, recall and F1 of watcher's same-story decision on labelled pairs, and its cost per article.

    python bench/eval_stories.py [--data DIR] [--fit] [--cost] [--stored 1000,1000000] [--replay [--fill 5]]

Pairs come from DIR/stories/dev_pairs.jsonl (`same`: yes / no / maybe; maybe left out). They are split into two
halves with a fixed seed: the weights (--fit) and the threshold are tuned on half A only; the table reports A,
the kept-back half B, and the whole. A pair counts as "same" only when the store's index would also find it (the
later item shares an index key with the earlier one), as in the daemon. Document frequencies come from the 2023
world-news feed items in DIR/datasets/ (what a store that has seen a year of news would know).

--replay decides each pair again through the store's own candidate search (story_cost.replay): the 72 hours of
corpus news before its later item are stored, as they are and with `--fill` more items beside each real one (a
busy store's full window, where postings reach their cap and the candidates their cut); a pair counts as "same"
when the earlier item is among the later one's candidates and scores above the threshold.

--cost builds a real store file with N synthetic stored articles and measures the CPU time of the whole story
step per new article (index lookup, scoring, writes) inside the store transaction. The default DIR is
../shared/evaldata next to the repository.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from watcher import stories
from watcher.stories import StoryText, same_story_score

SEED = 20261206
CORPUS = "datasets/rumca_rss_link_db_2023_world/items_2023_world_feeds.jsonl.gz"


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace(" ", "T")) if value else None


def text_of(item: dict) -> StoryText:
    return StoryText.of(item.get("title") or "", item.get("text") or "", when(item.get("published")))


def document_frequencies(data: Path, limit: int) -> tuple[Counter[str], int]:
    df: Counter[str] = Counter()
    n = 0
    path = data / CORPUS
    if not path.exists():
        return df, 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            df.update(StoryText.of(item.get("title") or "", item.get("description") or "").terms)
            n += 1
            if n >= limit:
                break
    return df, n


def found_by_index(a: StoryText, b: StoryText, df: Counter[str]) -> bool:
    return bool(set(a.index_keys(df)) & set(b.index_keys(df)))


def figures(rows: list[tuple[float, bool, bool]], threshold: float) -> tuple[float, float, float, int]:
    tp = sum(1 for s, same, found in rows if same and found and s >= threshold)
    fp = sum(1 for s, same, found in rows if not same and found and s >= threshold)
    fn = sum(1 for s, same, found in rows if same and not (found and s >= threshold))
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1, fp


def fit(xs: list[tuple[float, ...]], ys: list[bool], rounds: int = 3000, l2: float = 0.01) -> tuple[list[float], float]:
    """Plain logistic regression by gradient descent on standardised features; returns weights for raw ones."""
    mean = [sum(c) / len(c) for c in zip(*xs, strict=True)]
    spread = [
        math.sqrt(sum((v - m) ** 2 for v in c) / len(c)) or 1.0
        for c, m in zip(zip(*xs, strict=True), mean, strict=True)
    ]
    xs = [tuple((v - m) / s for v, m, s in zip(x, mean, spread, strict=True)) for x in xs]
    w, b, rate = [0.0] * len(xs[0]), 0.0, 0.1
    for _ in range(rounds):
        gw, gb = [l2 * wi for wi in w], 0.0
        for x, y in zip(xs, ys, strict=True):
            z = b + sum(wi * xi for wi, xi in zip(w, x, strict=True))
            err = 1 / (1 + math.exp(-max(min(z, 30), -30))) - (1.0 if y else 0.0)
            gb += err / len(xs)
            for i, xi in enumerate(x):
                gw[i] += err * xi / len(xs)
        w = [wi - rate * g for wi, g in zip(w, gw, strict=True)]
        b -= rate * gb
    raw = [wi / s for wi, s in zip(w, spread, strict=True)]
    return raw, b - sum(wi * m for wi, m in zip(raw, mean, strict=True))


def threshold_for(rows: list[tuple[float, bool, bool]], precision: float) -> float:
    """The lowest threshold at which precision on these rows stays at or above `precision`."""
    best = math.inf
    for t in sorted({s for s, _, _ in rows}, reverse=True):
        p, _, _, _ = figures(rows, t)
        if p >= precision:
            best = t
    return best


def reference(half_a, half_b, pairs, texts, df, documents) -> None:
    """The issue's reference points, measured the same way: threshold tuned on A for precision 0.95."""

    def idf(term: str) -> float:
        return math.log((documents + 1) / (df.get(term, 0) + 1)) + 1

    def cosine(a: StoryText, b: StoryText) -> float:
        dot = sum(idf(t) ** 2 for t in a.terms & b.terms)
        norm = math.sqrt(sum(idf(t) ** 2 for t in a.terms)) * math.sqrt(sum(idf(t) ** 2 for t in b.terms))
        return dot / norm if norm else 0.0

    def jaccard(a: StoryText, b: StoryText) -> float:
        union = a.title_terms | b.title_terms
        return len(a.title_terms & b.title_terms) / len(union) if union else 0.0

    print("\nreference scorers (no index), threshold tuned on A for precision >= 0.95:")
    for name, scorer in (("TF-IDF cosine, title+summary", cosine), ("title-word Jaccard", jaccard)):

        def rows(half, scorer=scorer):
            return [(scorer(*texts[id(p)]), p["same"] == "yes", True) for p in half]

        t = threshold_for(rows(half_a), 0.95)
        cells = "  ".join(
            f"{label} P {p:.3f} R {r:.3f}"
            for label, half in (("A", half_a), ("B", half_b), ("whole", pairs))
            for p, r, _, _ in [figures(rows(half), t)]
        )
        print(f"  {name:<30} {cells}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "evaldata")
    ap.add_argument("--fit", action="store_true", help="fit the weights on half A and print them")
    ap.add_argument("--precision", type=float, default=0.96, help="precision the threshold aims at on half A")
    ap.add_argument("--df-items", type=int, default=200_000, help="corpus items for document frequencies")
    ap.add_argument("--cost", action="store_true", help="also measure the CPU cost per article")
    ap.add_argument("--stored", default="1000,1000000", help="stored articles for --cost")
    ap.add_argument("--days", type=int, default=365, help="--cost: the stored articles span this many days")
    ap.add_argument("--replay", action="store_true", help="also decide each pair through the store's own search")
    ap.add_argument("--fill", type=int, default=5, help="--replay: stored items beside each real one (window density)")
    ap.add_argument("--errors", action="store_true", help="list the misses and false merges of half B")
    args = ap.parse_args(argv)
    path = args.data / "stories" / "dev_pairs.jsonl"
    if not path.exists():
        print(f"No labelled pairs at {path}; nothing to evaluate (pass --data).")
        return 0
    pairs = [p for p in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if p["same"] in ("yes", "no")]
    random.Random(SEED).shuffle(pairs)
    half_a, half_b = pairs[: len(pairs) // 2], pairs[len(pairs) // 2 :]
    df, documents = document_frequencies(args.data, args.df_items)
    print(f"{len(pairs)} pairs (maybe left out), halves of {len(half_a)} and {len(half_b)}; df from {documents} items")

    texts = {id(p): (text_of(p["a"]), text_of(p["b"])) for p in pairs}
    if args.fit:
        xs = [stories.features(*texts[id(p)], df, documents) for p in half_a]
        w, b = fit(xs, [p["same"] == "yes" for p in half_a])
        stories.WEIGHTS, stories.BIAS = tuple(w), b
        print("WEIGHTS = (" + ", ".join(f"{x:.3f}" for x in w) + f")\nBIAS = {b:.3f}")

    def rows(half: list[dict]) -> list[tuple[float, bool, bool]]:
        out = []
        for p in half:
            a, b = texts[id(p)]
            out.append((same_story_score(a, b, df, documents), p["same"] == "yes", found_by_index(a, b, df)))
        return out

    threshold = threshold_for(rows(half_a), args.precision)
    print(
        f"threshold tuned on A for precision >= {args.precision}: {threshold:.3f} (in code: {stories.StorySettings().threshold})"
    )
    print(f"\n{'pairs':<12}{'n':>5}{'P':>7}{'R':>7}{'F1':>7}{'false merges':>14}{'index recall':>14}")
    for name, half in (("A (tuned)", half_a), ("B (kept)", half_b), ("whole", pairs)):
        r = rows(half)
        p, rec, f1, fp = figures(r, stories.StorySettings().threshold if not args.fit else threshold)
        index_recall = sum(1 for _, same, found in r if same and found) / max(1, sum(1 for _, same, _ in r if same))
        print(f"{name:<12}{len(half):>5}{p:>7.3f}{rec:>7.3f}{f1:>7.3f}{fp:>14}{index_recall:>14.3f}")
    reference(half_a, half_b, pairs, texts, df, documents)
    if args.errors:
        t = stories.StorySettings().threshold if not args.fit else threshold
        for p in half_b:
            a, b = texts[id(p)]
            s = same_story_score(a, b, df, documents)
            said = s >= t and found_by_index(a, b, df)
            if said != (p["same"] == "yes"):
                kind = "FALSE MERGE" if said else "miss"
                print(f"{kind:<12}{s:6.2f} {p['a']['title'][:60]!r} / {p['b']['title'][:60]!r}")
    if args.replay:
        from story_cost import replay

        t = stories.StorySettings().threshold if not args.fit else threshold
        for fill in sorted({0, args.fill}):
            found = replay(args.data, pairs, df, documents, fill)
            print(
                f"\nreplayed through the store's candidate search, 72 h of news before each pair stored"
                f" ({fill} more items beside each real one):"
            )
            print(
                f"{'pairs':<12}{'n':>5}{'P':>7}{'R':>7}{'F1':>7}{'false merges':>14}{'index recall':>14}{'candidates':>12}"
            )
            for name, half in (("A (tuned)", half_a), ("B (kept)", half_b), ("whole", pairs)):
                r = [
                    (
                        same_story_score(*texts[id(p)], df, documents),
                        p["same"] == "yes",
                        found[p["pair"]][0] in found[p["pair"]][1:],
                    )
                    for p in half
                ]
                p_, rec, f1, fp = figures(r, t)
                index_recall = sum(1 for _, same, hit in r if same and hit) / max(1, sum(1 for _, same, _ in r if same))
                mean = sum(len(found[p["pair"]]) - 1 for p in half) / len(half)
                print(
                    f"{name:<12}{len(half):>5}{p_:>7.3f}{rec:>7.3f}{f1:>7.3f}{fp:>14}{index_recall:>14.3f}{mean:>12.1f}"
                )
    if args.cost:
        from story_cost import measure  # the store-backed part, kept apart to stay readable

        measure(args.data, [int(n) for n in args.stored.split(",")], days=args.days)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
