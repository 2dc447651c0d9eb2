"""The peer: lemon24/reader's `update_feeds` on the same local feeds (cold, then all-304).

    python bench/peer.py --port PORT --feeds 1000 --phases cold,warm,warm,warm [--workers 10]

reader (pip install reader) fetches with requests in `workers` threads and parses with feedparser; it keeps
ETags and sends If-None-Match. `scheduled=False` so the second update is not skipped as "not due". It does no
article extraction, so it is compared with watcher at `extract = false`. workers=10 matches watcher's default
fetch concurrency. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def run(args: argparse.Namespace) -> dict:
    from reader import make_reader
    from reader.exceptions import ReaderError

    site = common.site_module().Site.attach(args.port)
    site.control("reset")
    tmp = Path(tempfile.mkdtemp(prefix="reader-bench-"))
    rows = []
    try:
        reader = make_reader(str(tmp / "reader.sqlite"))
        for i in range(args.feeds):
            reader.add_feed(site.feed_url(i))
        for step, phase in enumerate(args.phases.split(",")):
            before = site.control("stats")
            sampler = common.Sampler(exclude={site.pid}).start()
            counts: collections.Counter = collections.Counter()
            new = 0
            started = time.perf_counter()
            for result in reader.update_feeds_iter(scheduled=False, workers=args.workers):
                if result.value is None:
                    counts["not-modified"] += 1
                elif isinstance(result.value, ReaderError):
                    counts["error"] += 1
                else:
                    counts["ok"] += 1
                    new += result.value.new
            wall = time.perf_counter() - started
            usage = sampler.stop()
            after = site.control("stats")
            rows.append(
                {
                    "phase": phase,
                    "step": step,
                    "feeds": args.feeds,
                    "wall_s": round(wall, 3),
                    "feeds_per_s": round(args.feeds / wall, 1),
                    "new_entries": new,
                    "statuses": dict(counts),
                    **usage,
                    "cpu_ms_per_feed": round(1000 * usage["cpu_s"] / args.feeds, 2),
                    "site_cpu_s": round(after["cpu_s"] - before["cpu_s"], 2),
                    "site_requests": after["requests"] - before["requests"] - 1,
                }
            )
            print(f"# reader {phase}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
        reader.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    for phase in {r["phase"] for r in rows}:
        items = [r for r in rows if r["phase"] == phase]
        summary[phase] = {
            k: common.median([r[k] for r in items])
            for k in ("wall_s", "feeds_per_s", "cpu_s", "cpu_ms_per_feed", "peak_rss_mb")
        }
        summary[phase]["runs"] = len(items)
    import importlib.metadata

    return {"reader": importlib.metadata.version("reader"), "workers": args.workers, "rows": rows, "summary": summary}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--phases", default="cold,warm,warm,warm")
    p.add_argument("--workers", type=int, default=10)
    args = p.parse_args()
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
