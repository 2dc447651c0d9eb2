"""What one conditional GET answered 304 costs watcher's fetcher: CPU, or instructions under callgrind.

    python bench/request_cost.py                 # CPU us per request, 3 runs of 3,000 requests (alternate commits:
                                                 # this machine's CPU figures move 10-30% from run to run)
    python bench/request_cost.py --callgrind     # instructions per request, repeatable to ~0.1% whatever the load

The requests go to bench/site.py (another process, 127.0.0.1), ten in flight, over 200 feeds whose ETags were
fetched first, through one `watcher.fetch.Fetcher` with the default settings (loopback allowed). `--callgrind`
runs this script under valgrind twice, with 200 and 1,200 requests after the same start, and divides the
difference of the totals by 1,000: start-up and imports cancel out. `WATCHER_SRC=<a snapshot of watcher/>`
measures another commit (bench/common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # puts the watcher measured on the path

FEEDS = 200
IN_FLIGHT = 10


async def requests(port: int, count: int) -> tuple[float, float]:
    """CPU and wall seconds of `count` conditional GETs answered 304."""
    from watcher.config_sections import FetchSettings
    from watcher.fetch import Fetcher
    from watcher.models import FeedState, NotModified

    async with Fetcher(FetchSettings(allow_networks=("127.0.0.0/8",))) as fetcher:
        states = []
        for i in range(FEEDS):
            url = f"http://127.0.0.1:{port}/f/{i}.xml"
            first = await fetcher.fetch_feed(FeedState(url))
            states.append(FeedState(url, etag=first.etag))
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(state: FeedState) -> None:
            async with slots:
                answer = await fetcher.fetch_feed(state)
            if not isinstance(answer, NotModified):
                raise SystemExit(f"expected a 304 from {state.url}, got {type(answer).__name__}")

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(states[k % FEEDS]) for k in range(count)))
        return time.process_time() - cpu, time.perf_counter() - wall


def instructions(port: int, count: int) -> int:
    return common.callgrind_instructions(__file__, ["--port", str(port), "--requests", str(count), "--measured-run"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, help="a running bench/site.py with at least 200 feeds")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--callgrind", action="store_true")
    p.add_argument("--measured-run", action="store_true", help=argparse.SUPPRESS)  # what valgrind runs
    args = p.parse_args()
    if args.measured_run:
        asyncio.run(requests(args.port, args.requests))
        return
    if args.callgrind and not shutil.which("valgrind"):
        print("valgrind is not installed: instruction counts skipped")
        return
    site = None if args.port else common.start_site(FEEDS, 1)
    port = args.port or site.port
    try:
        print(f"watcher from {common.SRC}")
        print("| measure | per request |\n|---|---|")
        if args.callgrind:
            small, large = instructions(port, 200), instructions(port, 1200)
            print(f"| instructions (callgrind; {small:,} and {large:,} in all) | {(large - small) / 1000:,.0f} |")
            return
        for run in range(args.runs):
            cpu, wall = asyncio.run(requests(port, args.requests))
            print(
                f"| run {run + 1}: CPU us, requests/s | {cpu / args.requests * 1e6:,.0f} us, "
                f"{args.requests / wall:,.0f}/s |"
            )
    finally:
        if site is not None:
            site.stop()


if __name__ == "__main__":
    main()
