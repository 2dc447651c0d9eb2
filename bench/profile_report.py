"""Profile watcher's cold and warm polls and say where the CPU goes.

    python bench/profile_report.py                      # profile a 100-feed cold + warm poll with py-spy, summarise
    python bench/profile_report.py --feeds 1000 --phases cold,warm --no-extract
    python bench/profile_report.py --summarise bench/results/profiles/x.pyspy.txt

It runs bench/poll.py with `--profile py-spy` (py-spy samples this process, all its threads, and its
extraction workers at 200 Hz; idle samples are left out), then reads the collapsed stacks and prints, per process
role (parent = the event loop and its threads, workers = extraction):
  * samples (~CPU share), the top leaf functions ("self"), and
  * inclusive samples of watcher's stages in the parent (parse, match, store, fetch, body decoding, IPC).
`--profile cprofile` instead writes cProfile listings (parent's main thread only) next to the raw files.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

STAGES = {
    "match (topics.match_article)": "match_article (watcher/rules/topics.py",
    "store (Store.apply_update, record_polls)": ("apply_update (watcher/store", "record_polls (watcher/store"),
    "store reads (known_entries)": "known_entries (watcher/store",
    "fetch (Fetcher._get, all of httpx)": "_get (watcher/fetch.py",
    "  of which body decoding (_BodyDecoder)": "_BodyDecoder",
    "  of which httpcore pool bookkeeping (has_expired/get_extra_info)": "has_expired (httpcore",
    "worker IPC (ProcessPoolExecutor submit/queue feeder)": (
        "submit (concurrent/futures/process.py",
        "_feed (multiprocessing/queues.py",
        "_ExecutorManagerThread",
    ),
    "parse in the parent (parse_feed on a thread)": "parse_feed (watcher/parse.py",
    "poll bookkeeping (_log_outcome, FeedUpdate)": "_log_outcome (watcher/pipeline.py",
}


def summarise(path: Path, top: int = 25) -> dict:
    roles: collections.Counter = collections.Counter()
    leaf: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    stages: collections.Counter = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        procs = [f for f in frames if re.match(r"process \d+:", f)]
        if not procs:
            continue
        last = procs[-1]
        if len(procs) == 1:
            role = "parent"
        elif "site.py" in last:
            role = "site"
        elif "forkserver import main" in last and len(procs) == 2:
            role = "forkserver"
        else:  # forkserver's children (watcher before 422d4f9) or spawned children: extraction workers
            role = "workers"
        roles[role] += count
        code = [f for f in frames if not f.startswith("process ")]
        if not code:
            continue
        name = re.sub(r":\d+\)$", ")", code[-1])
        leaf[role][name] += count
        if role == "parent":
            joined = ";".join(code)
            for stage, needles in STAGES.items():
                needles = (needles,) if isinstance(needles, str) else needles
                if any(n in joined for n in needles):
                    stages[stage] += count
    total = sum(roles.values()) or 1
    return {
        "file": str(path),
        "samples": dict(roles),
        "share_pct": {r: round(100 * c / total, 1) for r, c in roles.items()},
        "parent_stages_pct_of_parent": {
            s: round(100 * c / max(1, roles["parent"]), 1) for s, c in stages.most_common()
        },
        "top_self": {
            r: [(n, c, round(100 * c / max(1, roles[r]), 1)) for n, c in counter.most_common(top)]
            for r, counter in leaf.items()
        },
    }


def render(s: dict) -> str:
    out = [
        f"## {Path(s['file']).name}",
        "",
        "samples by process: " + ", ".join(f"{r} {c} ({s['share_pct'][r]}%)" for r, c in s["samples"].items()),
        "",
    ]
    out.append("parent, inclusive by stage (% of parent samples):")
    out += [f"  {pct:5.1f}%  {stage}" for stage, pct in s["parent_stages_pct_of_parent"].items()]
    for role, rows in s["top_self"].items():
        out += ["", f"{role}, top self:"]
        out += [f"  {pct:5.1f}%  {count:6d}  {name}" for name, count, pct in rows[:15]]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summarise", nargs="*", type=Path)
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--phases", default="cold,warm")
    p.add_argument("--no-extract", action="store_true")
    p.add_argument("--port", type=int)
    args = p.parse_args()
    files = args.summarise
    if not files:
        label = f"spy{'-noextract' if args.no_extract else ''}"
        cmd = [
            common.PYTHON,
            str(common.BENCH / "poll.py"),
            "--feeds",
            str(args.feeds),
            "--phases",
            args.phases,
            "--profile",
            "py-spy",
            "--profile-phases",
            args.phases,
            "--label",
            label,
        ]
        cmd += ["--no-extract"] if args.no_extract else []
        cmd += ["--port", str(args.port)] if args.port else []
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        files = sorted((common.RESULTS / "profiles").glob(f"{label}-{args.feeds}-*.pyspy.txt"))
    summaries = [summarise(f) for f in files]
    for s in summaries:
        print(render(s))
        print()
    common.write_json("profile-summary.json", summaries)


if __name__ == "__main__":
    main()
