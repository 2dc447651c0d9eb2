"""A local news site for the benchmarks, served from its own process on 127.0.0.1.

    python bench/site.py --feeds 1000 --items 10 [--port 0] [--synthetic] [--no-gzip]

prints `READY <port> <json>` on stdout once it listens. Routes:

    /f/<i>.xml          feed i: the items of real feed (i mod 198) with our own links, newest first, K items;
                        ETag "<i>-<head>"; If-None-Match with the current ETag -> 304
    /a/<i>/<s>.html     article page of item s of feed i: real page ((i*K + s) mod P); unique URL per item
    /_control/bump?fraction=0.1&new=3&seed=1&limit=N   "mixed": that fraction of feeds 0..N-1 gets `new` new items
    /_control/reset     every feed back to its first K items
    /_control/stats     requests served and this process's CPU seconds and RSS (JSON)

It is a raw asyncio HTTP/1.1 server (keep-alive, precomputed responses, gzip when the client accepts it), so it
costs little CPU per request; `bench/limits.py` measures its raw requests/s with a raw socket client. Its CPU is
reported apart from watcher's. Use `Site.start(...)` from another process to run it and talk to it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

_REASONS = {200: b"OK", 304: b"Not Modified", 404: b"Not Found", 400: b"Bad Request"}


class SiteData:
    def __init__(self, feeds: int, items: int, *, synthetic: bool, use_gzip: bool, host: str, port: int):
        self.n, self.k = feeds, items
        self.use_gzip = use_gzip
        self.base = f"http://{host}:{port}"
        self.pages = common.load_pages(synthetic=synthetic)
        self.feedset = common.load_feeds(synthetic=synthetic)
        self.heads = [items] * feeds  # item numbers head-K .. head-1 are in the feed
        self.requests = 0
        self.by_kind = {"feed": 0, "304": 0, "page": 0, "other": 0}
        # Pages and feeds: precomputed plain and gzip bodies (level 1, nginx's default gzip_comp_level).
        self.page_bodies = [(body, gzip.compress(body, 1) if use_gzip else b"") for _, body in self.pages.pages]
        # Item texts: feed i takes the items of real feed t = i mod T, continuing into the next feeds' items when
        # it needs more than t has (cycling t's own items would multiply one huge item), in t's format.
        self.pool = [item for t in self.feedset.templates for item in t.items]
        self.offsets, total = [], 0
        for t in self.feedset.templates:
            self.offsets.append(total)
            total += len(t.items)
        self._feed_cache: dict[int, tuple[int, bytes, bytes]] = {}
        for i in range(feeds):
            self._feed(i)

    def feed_url(self, i: int) -> str:
        return f"{self.base}/f/{i}.xml"

    def article_url(self, i: int, s: int) -> str:
        return f"{self.base}/a/{i}/{s}.html"

    def _feed(self, i: int) -> tuple[int, bytes, bytes]:
        head = self.heads[i]
        cached = self._feed_cache.get(i)
        if cached and cached[0] == head:
            return cached
        t = i % len(self.feedset.templates)
        template, offset = self.feedset.templates[t], self.offsets[t]
        items = [
            (s, self.article_url(i, s), self.pool[(offset + s) % len(self.pool)])
            for s in range(head - 1, max(head - self.k, 0) - 1, -1)
        ]
        body = common.render_feed(template, self.feed_url(i), self.base + "/", items)
        entry = (head, body, gzip.compress(body, 1) if self.use_gzip else b"")
        self._feed_cache[i] = entry
        return entry

    def page_of(self, i: int, s: int) -> int:
        return (i * self.k + s) % len(self.page_bodies)

    def bump(self, fraction: float, new: int, seed: int, limit: int = 0) -> list[int]:
        """Give `fraction` of feeds 0..limit-1 (all feeds by default) `new` new items each."""
        pool = range(min(limit, self.n) if limit > 0 else self.n)
        count = max(1, round(len(pool) * fraction))
        chosen = sorted(random.Random(seed).sample(pool, count))
        for i in chosen:
            self.heads[i] += new
            self._feed(i)
        return chosen

    def reset(self) -> None:
        self.heads = [self.k] * self.n
        for i in range(self.n):
            self._feed(i)

    def info(self) -> dict:
        feed_sizes = sorted(len(self._feed(i)[1]) for i in range(self.n))
        return {
            "feeds": self.n,
            "items": self.k,
            "pages": len(self.page_bodies),
            "page_source": self.pages.source,
            "feed_source": self.feedset.source,
            "gzip": self.use_gzip,
            "median_feed_bytes": feed_sizes[len(feed_sizes) // 2],
            "mean_feed_bytes": sum(feed_sizes) // len(feed_sizes),
            "mean_page_bytes": sum(len(b) for b, _ in self.page_bodies) // len(self.page_bodies),
        }


def _response(status: int, body: bytes, ctype: bytes, extra: list[bytes] = (), close: bool = False) -> list[bytes]:
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"?")),
        b"Server: bench-site",
        b"Content-Length: %d" % len(body),
    ]
    if ctype:
        head.append(b"Content-Type: " + ctype)
    head += extra
    if close:
        head.append(b"Connection: close")
    return [b"\r\n".join(head) + b"\r\n\r\n", body]


class HttpProtocol(asyncio.Protocol):
    site: SiteData

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            lines = head.split(b"\r\n")
            try:
                method, target, _ = lines[0].split(b" ", 2)
            except ValueError:
                self.transport.writelines(_response(400, b"", b"", close=True))
                self.transport.close()
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0") or 0)
            if length:  # no route takes a body; skip it (assumes it arrived with the head, fine for our clients)
                self.buf = self.buf[length:]
            close = headers.get(b"connection", b"").lower() == b"close"
            parts = self.handle(method, target.decode("latin-1"), headers, close)
            if method == b"HEAD":
                parts = parts[:1]
            self.transport.writelines(parts)
            if close:
                self.transport.close()
                return

    def handle(self, method: bytes, target: str, headers: dict[bytes, bytes], close: bool) -> list[bytes]:
        site = self.site
        site.requests += 1
        path, _, query = target.partition("?")
        gz = site.use_gzip and b"gzip" in headers.get(b"accept-encoding", b"")
        try:
            if path.startswith("/f/") and path.endswith(".xml"):
                i = int(path[3:-4])
                if not 0 <= i < site.n:
                    raise ValueError
                head, body, zbody = site._feed(i)
                etag = b'"%d-%d"' % (i, head)
                extra = [b"ETag: " + etag, b"Vary: Accept-Encoding"]
                inm = headers.get(b"if-none-match")
                if inm and etag in [t.strip() for t in inm.split(b",")]:
                    site.by_kind["304"] += 1
                    return _response(304, b"", b"", extra, close)
                site.by_kind["feed"] += 1
                if gz:
                    return _response(
                        200, zbody, b"application/xml; charset=utf-8", extra + [b"Content-Encoding: gzip"], close
                    )
                return _response(200, body, b"application/xml; charset=utf-8", extra, close)
            if path.startswith("/a/") and path.endswith(".html"):
                i_text, s_text = path[3:-5].split("/")
                i, s = int(i_text), int(s_text)
                if not (0 <= i < site.n and 0 <= s < site.heads[i]):
                    raise ValueError
                site.by_kind["page"] += 1
                body, zbody = site.page_bodies[site.page_of(i, s)]
                if gz:
                    return _response(
                        200,
                        zbody,
                        b"text/html; charset=utf-8",
                        [b"Content-Encoding: gzip", b"Vary: Accept-Encoding"],
                        close,
                    )
                return _response(200, body, b"text/html; charset=utf-8", [], close)
            if path.startswith("/_control/"):
                site.by_kind["other"] += 1
                args = dict(p.partition("=")[::2] for p in query.split("&") if p)
                result = self.control(path[len("/_control/") :], args)
                return _response(200, json.dumps(result).encode(), b"application/json", [], close)
        except (ValueError, IndexError):
            pass
        site.by_kind["other"] += 1
        return _response(404, b"not found", b"text/plain", [], close)

    def control(self, command: str, args: dict[str, str]) -> object:
        site = self.site
        if command == "bump":
            chosen = site.bump(
                float(args.get("fraction", "0.1")),
                int(args.get("new", "3")),
                int(args.get("seed", "1")),
                int(args.get("limit", "0")),
            )
            return {"bumped": len(chosen), "new_items": len(chosen) * int(args.get("new", "3"))}
        if command == "reset":
            site.reset()
            return {"ok": True}
        if command == "stats":
            t = os.times()
            return {
                "requests": site.requests,
                "by_kind": site.by_kind,
                "cpu_s": t.user + t.system,
                "rss_mb": common.rss_bytes(os.getpid()) / 2**20,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        if command == "info":
            return site.info()
        raise ValueError(command)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    # Bind first (port 0 -> a free port), then build the data, which needs the port for its URLs.
    server = await loop.create_server(HttpProtocol, args.host, args.port, backlog=4096, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    started = time.perf_counter()
    HttpProtocol.site = SiteData(
        args.feeds, args.items, synthetic=args.synthetic, use_gzip=not args.no_gzip, host=args.host, port=port
    )
    info = HttpProtocol.site.info() | {"startup_s": round(time.perf_counter() - started, 2), "pid": os.getpid()}
    print(f"READY {port} {json.dumps(info)}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--synthetic", action="store_true", help="ignore ../shared/evaldata even when present")
    p.add_argument("--no-gzip", action="store_true")
    args = p.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        p.error("the benchmark site only listens on loopback")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


# --- the handle other processes use ---------------------------------------------------------------------------


class Site:
    """A running site process: `site = Site.start(feeds=1000, items=10)`, `site.feed_url(3)`, `site.stop()`."""

    def __init__(self, proc: subprocess.Popen, port: int, info: dict):
        self.proc, self.port, self.info = proc, port, info
        self.base = f"http://127.0.0.1:{port}"

    @classmethod
    def start(
        cls, feeds: int, items: int, *, synthetic: bool = False, use_gzip: bool = True, timeout: float = 300
    ) -> Site:
        cmd = [common.PYTHON, str(Path(__file__).resolve()), "--feeds", str(feeds), "--items", str(items)]
        if synthetic:
            cmd.append("--synthetic")
        if not use_gzip:
            cmd.append("--no-gzip")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        line = proc.stdout.readline()
        if not line.startswith("READY") or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"site did not start: {line!r}")
        _, port, info = line.split(" ", 2)
        return cls(proc, int(port), json.loads(info))

    @classmethod
    def attach(cls, port: int) -> Site:
        site = cls(None, port, {})  # type: ignore[arg-type]
        site.info = site.control("info")
        return site

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else self.info.get("pid", 0)

    def feed_url(self, i: int) -> str:
        return f"{self.base}/f/{i}.xml"

    def control(self, command: str, **args: object) -> dict:
        query = "&".join(f"{k}={v}" for k, v in args.items())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.base}/_control/{command}?{query}", timeout=60) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


if __name__ == "__main__":
    main()
