"""The limits watcher is measured against, on the same pages and feeds the site serves, in the same run.

    python bench/limits.py trafilatura --feeds 100 --items 10 [--workers 2] [--runs 3]
    python bench/limits.py feedparser --port PORT --feeds 198 [--runs 3]
    python bench/limits.py http --port PORT [--requests 3000]

* trafilatura: `watcher.extract.extract_text` (watcher's exact settings), one process per core, on the pages
  of a cold poll of `--feeds` x `--items` articles (page (i*K + s) mod P for item s of feed i, as the site
  serves them) and on the P unique pages. The workers hold the pages already: this is extraction alone, no IPC
  of page bodies, no HTTP; the ceiling for a cold poll.
* feedparser: per core (one process), `watcher.parse.parse_feed` and plain `feedparser.parse`, on the feed
  bodies the site serves (the 200 real feeds' items, K per feed) and on the 200 original real feed files.
* http: one `httpx.AsyncClient` at 10 concurrent requests (304s, full feeds, pages), and the site's own
  capacity with a raw asyncio socket client on 10 keep-alive connections.

Each prints one JSON object on its last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import sys
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

# --- trafilatura ------------------------------------------------------------------------------------------------

_PAGES: list[bytes] = []
_METADATA = True  # whether extract_text also looks for the page's title, author and date


def _init_worker(synthetic: bool, metadata: bool = True) -> None:
    global _PAGES, _METADATA
    _PAGES = [body for _, body in common.load_pages(synthetic=synthetic).pages]
    _METADATA = metadata
    import trafilatura  # noqa: F401

    from watcher.extract import extract_text  # noqa: F401


def _extract(index: int) -> tuple[float, bool]:
    from watcher.extract import extract_text

    started = time.process_time()
    result = extract_text(_PAGES[index], f"http://127.0.0.1/a/{index}.html", _METADATA)
    return time.process_time() - started, result is not None


def _ready(_: int) -> int:
    time.sleep(0.2)  # keeps each worker busy long enough that every worker gets one
    return os.getpid()


def trafilatura_limit(
    feeds: int, items: int, workers: int, runs: int, synthetic: bool, unique_pass: bool = True, metadata: bool = True
) -> dict:
    pages = common.load_pages(synthetic=synthetic)
    count = len(pages.pages)
    cold_set = [a % count for a in range(feeds * items)]
    unique = list(range(count))
    ctx = multiprocessing.get_context("forkserver")
    out: dict = {
        "pages": count,
        "page_source": pages.source,
        "workers": workers,
        "cold_set_pages": len(cold_set),
        "metadata": metadata,
    }
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(synthetic, metadata)) as pool:
        list(pool.map(_ready, range(workers)))
        for label, indices in (("cold_set", cold_set), ("unique", unique))[: 2 if unique_pass else 1]:
            rates, cpu_per_page, failed = [], [], 0
            for _ in range(runs if label == "cold_set" else 1):
                started = time.perf_counter()
                results = list(pool.map(_extract, indices, chunksize=1))
                wall = time.perf_counter() - started
                rates.append(len(indices) / wall)
                cpu_per_page.append(sum(c for c, _ in results) / len(results))
                failed = sum(1 for _, ok in results if not ok)
            out[label] = {
                "pages_per_s": round(common.median(rates), 1),
                "runs": [round(r, 1) for r in rates],
                "cpu_ms_per_page": round(1000 * common.median(cpu_per_page), 2),
                "no_text": failed,
            }
    return out


# --- feedparser -------------------------------------------------------------------------------------------------


def _get(url: str, headers: dict | None = None) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=60) as r:
        return r.read()


def feedparser_limit(port: int, feeds: int, runs: int, synthetic: bool, originals: bool) -> dict:
    import io

    import feedparser

    from watcher.models import FetchedFeed
    from watcher.parse import parse_feed

    base = f"http://127.0.0.1:{port}"
    served = [(f"{base}/f/{i}.xml", _get(f"{base}/f/{i}.xml")) for i in range(feeds)]
    originals = (
        [(f"http://127.0.0.1/{name}", body) for name, body in common.load_feeds(synthetic=synthetic).originals]
        if originals
        else []
    )
    headers = {"content-type": "application/xml; charset=utf-8"}

    def watcher_parse(url: str, body: bytes) -> int:
        return len(parse_feed(FetchedFeed(url=url, content=body, headers=headers), max_entries=200).entries)

    def plain_parse(url: str, body: bytes) -> int:
        return len(feedparser.parse(io.BytesIO(body), response_headers=headers).entries)

    out: dict = {
        "served_feeds": len(served),
        "served_mean_bytes": sum(len(b) for _, b in served) // max(1, len(served)),
    }
    for set_name, bodies in (("served", served), ("real_originals", originals)):
        if not bodies:
            continue
        out.setdefault(set_name, {})["mean_bytes"] = sum(len(b) for _, b in bodies) // len(bodies)
        for name, fn in (("watcher_parse_feed", watcher_parse), ("plain_feedparser", plain_parse)):
            rates, item_rates = [], []
            for _ in range(runs if set_name == "served" else 1):
                gc.collect()
                started = time.process_time()
                items = 0
                for url, body in bodies:
                    try:
                        items += fn(url, body)
                    except Exception:  # a real feed that watcher refuses (ParseError) still cost its time
                        pass
                cpu = time.process_time() - started
                rates.append(len(bodies) / cpu)
                item_rates.append(items / cpu)
            out[set_name][name] = {
                "feeds_per_cpu_s": round(common.median(rates), 1),
                "items_per_cpu_s": round(common.median(item_rates), 0),
                "ms_per_feed": round(1000 / common.median(rates), 2),
                "runs": [round(r, 1) for r in rates],
            }
    return out


# --- HTTP -------------------------------------------------------------------------------------------------------


async def _httpx_rate(urls: list[str], headers: dict, concurrency: int = 10) -> dict:
    import httpx

    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency), trust_env=False
    ) as client:
        queue = list(reversed(urls))
        statuses: dict[int, int] = {}

        async def worker() -> None:
            while queue:
                url = queue.pop()
                r = await client.get(url, headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        queue = list(reversed(urls[:100]))
        await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm the connections
        queue = list(reversed(urls))
        statuses.clear()
        cpu0, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        return {
            "req_per_s": round(len(urls) / wall, 0),
            "client_cpu_pct": round(100 * (time.process_time() - cpu0) / wall),
            "statuses": statuses,
        }


async def _raw_rate(port: int, paths: list[str], headers: str, connections: int = 10) -> dict:
    """The site's capacity: minimal HTTP/1.1 clients on keep-alive sockets (Content-Length bodies only)."""
    queue = list(reversed(paths))

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while queue:
            path = queue.pop()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            done += 1
        writer.close()
        return done

    started = time.perf_counter()
    cpu0 = time.process_time()
    done = sum(await asyncio.gather(*(one() for _ in range(connections))))
    wall = time.perf_counter() - started
    return {
        "req_per_s": round(done / wall, 0),
        "client_cpu_pct": round(100 * (time.process_time() - cpu0) / wall),
        "wall_s": wall,
    }


def http_limit(port: int, requests: int, feeds: int) -> dict:
    site = common.site_module().Site.attach(port)
    base = site.base
    n = min(feeds, site.info["feeds"])
    head = site.info["items"]
    feed_paths = [f"/f/{i % n}.xml" for i in range(requests)]
    page_paths = [f"/a/{i % n}/{(i // n) % head}.html" for i in range(max(requests // 3, 100))]
    out: dict = {}
    # Site capacity with the raw client: 304s (an ETag that matches: feeds are at head K after a reset),
    # gzip feeds and gzip pages. site_cpu_pct near 100 means the site, not the client, was the limit.
    for label, coro in (
        ("site_raw_304", lambda: _raw_rate_conditional(site.port, feed_paths, head)),
        ("site_raw_feed_gzip", lambda: _raw_rate(site.port, feed_paths, "Accept-Encoding: gzip\r\n")),
        ("site_raw_page_gzip", lambda: _raw_rate(site.port, page_paths, "Accept-Encoding: gzip\r\n")),
    ):
        before = site.control("stats")["cpu_s"]
        r = asyncio.run(coro())
        r["site_cpu_pct"] = round(100 * (site.control("stats")["cpu_s"] - before) / r.pop("wall_s"))
        out[label] = r

    # httpx: one client, 10 concurrent.
    for label, urls, hdrs in (
        ("httpx_304", [f"{base}{p}" for p in feed_paths], None),
        ("httpx_feed_gzip", [f"{base}{p}" for p in feed_paths], {"accept-encoding": "gzip"}),
        ("httpx_page_gzip", [f"{base}{p}" for p in page_paths], {"accept-encoding": "gzip"}),
    ):
        if hdrs is None:
            r = asyncio.run(_httpx_conditional(urls, head))
        else:
            r = asyncio.run(_httpx_rate(urls, hdrs))
        out[label] = r
    return out


async def _raw_rate_conditional(port: int, paths: list[str], head: int) -> dict:
    queue = list(reversed(paths))
    started, cpu0 = time.perf_counter(), time.process_time()

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while queue:
            path = queue.pop()
            i = path[3:-4]
            writer.write(f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: "{i}-{head}"\r\n\r\n'.encode())
            hdr = await reader.readuntil(b"\r\n\r\n")
            if not hdr.startswith(b"HTTP/1.1 304"):
                raise RuntimeError(hdr[:100])
            done += 1
        writer.close()
        return done

    done = sum(await asyncio.gather(*(one() for _ in range(10))))
    wall = time.perf_counter() - started
    return {
        "req_per_s": round(done / wall, 0),
        "client_cpu_pct": round(100 * (time.process_time() - cpu0) / wall),
        "wall_s": wall,
    }


async def _httpx_conditional(urls: list[str], head: int, concurrency: int = 10) -> dict:
    import httpx

    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency), trust_env=False
    ) as client:
        statuses: dict[int, int] = {}

        async def run(urls: list[str] = urls) -> None:
            queue = list(reversed(urls))

            async def worker() -> None:
                while queue:
                    url = queue.pop()
                    i = url.rsplit("/", 1)[1][:-4]
                    r = await client.get(url, headers={"if-none-match": f'"{i}-{head}"'})
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await run(urls[:100])  # warm the connections
        statuses.clear()
        cpu0, started = time.process_time(), time.perf_counter()
        await run()
        wall = time.perf_counter() - started
        return {
            "req_per_s": round(len(urls) / wall, 0),
            "client_cpu_pct": round(100 * (time.process_time() - cpu0) / wall),
            "statuses": statuses,
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["trafilatura", "feedparser", "http"])
    p.add_argument("--port", type=int)
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--workers", type=int, default=common.cores())
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--unique", action="store_true", help="trafilatura: also the unique pages once (~20 s)")
    p.add_argument(
        "--no-metadata",
        action="store_true",
        help="trafilatura: without the search for each page's title, author and date (what watcher skips when the"
        " feed entry has them)",
    )
    p.add_argument("--originals", action="store_true", help="feedparser: also the 200 original real feed files (~70 s)")
    args = p.parse_args()
    if args.what == "trafilatura":
        result = trafilatura_limit(
            args.feeds, args.items, args.workers, args.runs, args.synthetic, args.unique, not args.no_metadata
        )
    elif args.what == "feedparser":
        result = feedparser_limit(args.port, args.feeds, args.runs, args.synthetic, args.originals)
    else:
        result = http_limit(args.port, args.requests, args.feeds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
