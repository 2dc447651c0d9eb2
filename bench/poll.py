"""watcher's own polls against the local site, in-process, the way tests/test_pipeline.py drives them.

    python bench/poll.py --port PORT --feeds 100 --runs 3 --phases cold,warm,mixed
    python bench/poll.py --port PORT --feeds 1000 --runs 1 --phases cold,warm,mixed,warm,mixed --no-extract
    python bench/poll.py --feeds 100 --phases cold --profile cprofile      # starts its own site

Each run opens a fresh database, syncs N feeds from a config built with `config_from_dict` (the repository's
config.toml topics; `allow_networks = 127.0.0.0/8`; `per_host` = `concurrency` because every feed is on one
host here), builds the Pipeline once (one Fetcher, one extraction pool, warmed up before timing, as in a running
daemon), then polls every feed once per phase:

  cold   every item of every feed is new: fetch, parse, fetch page, extract, match, store
  warm   every feed answers 304 (the clock is moved a day on so all are due)
  mixed  the site first gives `--mixed-fraction` of the feeds `--mixed-new` new items each; the rest answer 304

Per phase: wall time, feeds/s, new articles/s, CPU seconds of this process and its children (extraction workers;
the site is another process, reported apart), peak RSS of the sum of those processes, and what the CPU of other
processes on the machine was meanwhile (the machine may be shared). The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from watcher.config import config_from_dict
from watcher.models import FetchedPage
from watcher.pipeline import Pipeline, poll
from watcher.runtime import Runtime, feeds_at_once
from watcher.store import Store
from watcher.workers import Workers

FALLBACK_TOPICS = {
    "drone_cooperation": {"rule": "drone* AND (produc* OR factory OR plant OR supply)"},
    "troop_deployment": {"rule": "troop* AND (deploy* OR send* OR sent OR withdraw* OR pulled)"},
}


def repo_topics() -> tuple[dict, dict, str]:
    """Topics and terms of the repository's config.toml (what a user starts with), else two simple rules."""
    try:
        data = tomllib.loads((common.REPO / "config.toml").read_text())
        topics, terms = data.get("topics") or {}, data.get("terms") or {}
        config_from_dict({"topics": topics, "terms": terms}, "config.toml")  # do they compile?
        return topics, terms, "config.toml"
    except Exception as e:  # another engineer may be changing the rule language: measure with simple rules
        return FALLBACK_TOPICS, {}, f"fallback ({type(e).__name__})"


def make_config(base: str, feeds: int, *, extract: bool, workers: int, concurrency: int, max_entries: int = 200):
    topics, terms, _ = repo_topics()
    data = {
        "fetch": {"allow_networks": ["127.0.0.0/8"], "concurrency": concurrency, "per_host": concurrency},
        "extract": {"enabled": extract, "workers": workers, "max_entries_per_feed": max_entries},
        "feeds": [{"name": f"feed-{i:05d}", "url": f"{base}/f/{i}.xml"} for i in range(feeds)],
        "topics": topics,
        "terms": terms,
        "channels": {"inbox": {"type": "console", "mode": "immediate"}},
    }
    return config_from_dict(data, "bench-config.toml")


_WARM_PAGE = (
    b"<html><body><article><p>" + b"Warm-up text for the extraction worker. " * 20 + b"</p></article></body></html>"
)


async def warm_up(extractor: Workers | None) -> None:
    """Start the pool and import trafilatura in every worker before any timing, as a daemon has done long ago."""
    if extractor is None:
        return
    page = FetchedPage(url="http://127.0.0.1/warm-up", content=_WARM_PAGE)
    for _ in range(2):
        await asyncio.gather(*(extractor.extract(page) for _ in range(extractor.workers * 2)), return_exceptions=True)


def system_busy_s() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Profiler:
    """cProfile of this process around one phase, or py-spy sampling this process and its children."""

    def __init__(self, kind: str | None, out_dir: Path, label: str):
        self.kind, self.out_dir, self.label = kind, out_dir, label
        self.proc: subprocess.Popen | None = None
        self.prof: cProfile.Profile | None = None

    def __enter__(self) -> Profiler:
        if self.kind == "cprofile":
            self.prof = cProfile.Profile()
            self.prof.enable()
        elif self.kind == "py-spy":
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            self.raw = self.out_dir / f"{self.label}.pyspy.txt"
            self.proc = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(os.getpid()),
                    "--subprocesses",
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(self.raw),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # let it attach
        return self

    def __exit__(self, *exc: object) -> None:
        if self.prof:
            self.prof.disable()
            path = self.out_dir / f"{self.label}.cprofile"
            self.prof.dump_stats(path)
            for key in ("tottime", "cumulative"):
                s = io.StringIO()
                pstats.Stats(str(path), stream=s).sort_stats(key).print_stats(40)
                (self.out_dir / f"{self.label}.cprofile.{key}.txt").write_text(s.getvalue())
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            try:
                _, err = self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                err = b""
            if err and not self.raw.exists():
                print(err.decode(errors="replace")[-2000:], file=sys.stderr)


_CLEANUP: list = []


def apply_experiments(spec: str) -> list:
    """What-if runs for the tuning notes, by monkeypatching watcher.pipeline in this process only. Never used by
    run_all.py. `feeds-cap=N`: at most N feeds inside update_feed at once; `parse-pool=N`: parse_feed runs in a
    pool of N processes (the thread asyncio.to_thread gives it just waits); `no-match`: skip topic matching."""
    import watcher.pipeline as wp

    cleanup = []
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        if name == "feeds-cap":
            real_update, cap = wp.update_feed, asyncio.Semaphore(int(value))

            async def capped(pipeline, feed, _real=real_update, _cap=cap):
                async with _cap:
                    return await _real(pipeline, feed)

            wp.update_feed = capped
        elif name == "parse-pool":
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(int(value), mp_context=multiprocessing.get_context("spawn"))
            real_parse = wp.parse_feed
            wp.parse_feed = lambda fetched, _real=real_parse, _pool=pool, **kw: _pool.submit(
                _real, fetched, **kw
            ).result()
            list(pool.map(abs, range(int(value) * 2)))  # start the workers before timing
            cleanup.append(pool.shutdown)
        elif name == "keepalive-304":
            import httpx

            real_close = httpx.Response.aclose

            async def aclose(self, _real=real_close):
                if self.status_code == 304 and not self.is_stream_consumed:
                    await self.aread()  # a 304 has no body: reading it lets httpcore keep the connection
                await _real(self)

            httpx.Response.aclose = aclose
        elif name == "no-match":
            wp.match_article = lambda *a, **kw: ()
        else:
            raise SystemExit(f"unknown experiment {name!r}")
    return cleanup


async def run_phases(args: argparse.Namespace, site, run: int, db_dir: Path) -> list[dict]:
    config = make_config(
        site.base, args.feeds, extract=not args.no_extract, workers=args.workers, concurrency=args.concurrency
    )
    store = Store.open(db_dir / f"run{run}.db")
    t0 = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=10 * run)
    store.sync_feeds(config.feeds, config.schedule.interval, t0)
    extractor = Workers(config.extract.workers, config.extract.timeout.total_seconds())
    results = []
    if args.experiment and run == 0:
        _CLEANUP.extend(apply_experiments(args.experiment))
    try:
        await warm_up(extractor)
        async with Runtime(config, workers=extractor) as runtime:
            pipeline = Pipeline.build(config, store, runtime)
            for step, phase in enumerate(args.phases.split(",")):
                now = t0 + timedelta(days=step)
                pipeline.clock = lambda now=now: now
                bumped = {}
                if phase == "mixed":
                    bumped = site.control(
                        "bump",
                        fraction=args.mixed_fraction,
                        new=args.mixed_new,
                        seed=1000 * run + step,
                        limit=args.feeds,
                    )
                feeds = store.due_feeds(now)
                before_site = site.control("stats")
                sampler = common.Sampler(exclude={site.pid}).start()
                busy0 = system_busy_s()
                label = f"{args.label or 'poll'}-{args.feeds}-{phase}-run{run}-step{step}"
                profiling = args.profile and phase in args.profile_phases.split(",") and run == 0
                with Profiler(args.profile if profiling else None, args.profile_dir, label):
                    started = time.perf_counter()
                    counted: list = []
                    if args.drive == "daemon":
                        # As watcher/daemon.py does: at most feeds_at_once(config) feeds in flight (it claims only
                        # as many as it can start, and more as polls end), each `poll(pipeline, [feed])`, whose
                        # outcome is dropped as soon as it is written (only its counts are kept here).
                        due = iter(feeds)

                        async def poll_in_turn(due=due, counted=counted) -> None:
                            for feed in due:
                                await _poll_one(pipeline, feed, counted)

                        await asyncio.gather(*(poll_in_turn() for _ in range(feeds_at_once(config))))
                    else:  # as tests/test_pipeline.py and `watcher poll` do: one poll() over all feeds
                        outcomes = await poll(pipeline, feeds)
                        counted = [_counts(o) for o in outcomes]
                    wall = time.perf_counter() - started
                busy = system_busy_s() - busy0
                usage = sampler.stop()
                after_site = site.control("stats")
                statuses = collections.Counter(c["status"] for c in counted)
                sources = sum((c["sources"] for c in counted), collections.Counter())
                new_entries = sum(c["new_entries"] for c in counted)
                new_articles = sum(c["new_articles"] for c in counted)
                errors = collections.Counter(c["error_kind"] for c in counted if c["status"] == "error")
                site_cpu = after_site["cpu_s"] - before_site["cpu_s"]
                results.append(
                    {
                        "phase": phase,
                        "run": run,
                        "feeds": len(feeds),
                        "wall_s": round(wall, 3),
                        "feeds_per_s": round(len(feeds) / wall, 1),
                        "new_entries": new_entries,
                        "new_articles": new_articles,
                        "articles_per_s": round(new_articles / wall, 1),
                        "statuses": dict(statuses),
                        "errors": dict(errors),
                        "body_sources": dict(sources),
                        **usage,
                        "cpu_ms_per_feed": round(1000 * usage["cpu_s"] / max(1, len(feeds)), 2),
                        "site_cpu_s": round(site_cpu, 2),
                        "others_cpu_s": round(max(0.0, busy - usage["cpu_s"] - site_cpu), 2),
                        "machine_busy_pct": round(100 * busy / wall / common.cores()),
                        "site_requests": after_site["requests"] - before_site["requests"] - 1,
                        "bumped": bumped,
                        "profiled": bool(profiling),
                        "drive": args.drive,
                    }
                )
                print(f"# {label}: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
                outcomes = counted = None
    finally:
        if extractor:
            extractor.shutdown()
        if run == args.runs - 1:
            for fn in _CLEANUP:
                fn()
        store.close()
    return results


def _counts(o) -> dict:
    u = o.update
    return {
        "status": u.status,
        "error_kind": u.error_kind,
        "new_entries": len(u.seen_entry_ids),
        "new_articles": len(u.articles),
        "sources": collections.Counter(a.body_source for a in u.articles),
    }


async def _poll_one(pipeline, feed, counted: list) -> None:
    for outcome in await poll(pipeline, [feed]):
        counted.append(_counts(outcome))


def summarise(rows: list[dict]) -> dict:
    by_phase: dict[str, list[dict]] = collections.defaultdict(list)
    for r in rows:
        by_phase[r["phase"]].append(r)
    out = {}
    for phase, items in by_phase.items():
        keys = (
            "wall_s",
            "feeds_per_s",
            "articles_per_s",
            "cpu_s",
            "cpu_ms_per_feed",
            "peak_rss_mb",
            "peak_rss_parent_mb",
            "peak_rss_children_mb",
            "site_cpu_s",
            "others_cpu_s",
            "new_articles",
        )
        out[phase] = {k: common.median([r[k] for r in items]) for k in keys} | {
            "runs": len(items),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in items),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, help="a running bench/site.py; without it one is started")
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--items", type=int, default=5, help="items per feed when this starts its own site")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--phases", default="cold,warm,mixed")
    p.add_argument("--no-extract", action="store_true")
    p.add_argument("--workers", type=int, default=0, help="extraction processes (0: one per core, the default)")
    p.add_argument("--concurrency", type=int, default=10, help="fetch.concurrency (watcher's default is 10)")
    p.add_argument("--mixed-fraction", type=float, default=0.1)
    p.add_argument("--mixed-new", type=int, default=3)
    p.add_argument("--profile", choices=["cprofile", "py-spy"])
    p.add_argument("--profile-phases", default="cold,warm")
    p.add_argument("--profile-dir", type=Path, default=common.RESULTS / "profiles")
    p.add_argument("--label", default="")
    p.add_argument(
        "--drive",
        choices=["poll", "daemon"],
        default="daemon",
        help="daemon (the default, what `watcher run` does): one poll() per feed, outcomes dropped "
        "(watcher/daemon.py); poll: one poll() over all feeds, every outcome kept to the end (tests, `watcher poll`)",
    )
    p.add_argument(
        "--experiment",
        default="",
        help="what-if monkeypatches: feeds-cap=N, parse-pool=N, keepalive-304, no-match (see apply_experiments)",
    )
    p.add_argument("--synthetic", action="store_true")
    args = p.parse_args()
    args.profile_dir.mkdir(parents=True, exist_ok=True)
    own_site = None
    if args.port:
        site = common.site_module().Site.attach(args.port)
    else:
        site = own_site = common.start_site(args.feeds, args.items, synthetic=args.synthetic)
    if site.info["feeds"] < args.feeds:
        sys.exit(f"the site has {site.info['feeds']} feeds, fewer than --feeds {args.feeds}")
    rows = []
    db_dir = Path(tempfile.mkdtemp(prefix="watcher-bench-"))
    try:
        for run in range(args.runs):
            site.control("reset")
            rows += asyncio.run(run_phases(args, site, run, db_dir))
    finally:
        shutil.rmtree(db_dir, ignore_errors=True)
        if own_site:
            own_site.stop()
    print(
        json.dumps(
            {
                "site": site.info,
                "topics": repo_topics()[2],
                "extract": not args.no_extract,
                "experiment": args.experiment,
                "rows": rows,
                "summary": summarise(rows),
            }
        )
    )


if __name__ == "__main__":
    main()
