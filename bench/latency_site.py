"""A local feed site whose every answer takes a set latency, on several loopback addresses (one "host" each).

    python bench/latency_site.py --feeds 500 --hosts 50 --latency 0.2

prints `READY <port>` once it listens on 127.0.0.1 .. 127.0.0.<hosts>, all on that port. Feed i is
`http://127.0.0.<1 + i % hosts>:<port>/f/<i>.xml`: three items of its own, an ETag, 304 to a matching
If-None-Match; every feed answer waits `latency` seconds first, so polling is I/O-bound and the cores are not the
limit. `/_stats` (no latency) answers JSON: per feed, the times of its requests (seconds since the site started).

Several addresses because watcher's per-host limit is per host name: a site on one address would measure that
limit, not the workers. A raw asyncio HTTP/1.1 server with keep-alive, so it costs little CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import time

_REQUEST_LINE = re.compile(rb"^GET (\S+) HTTP/1\.[01]\r\n", re.MULTILINE)


def feed_url(port: int, hosts: int, i: int) -> str:
    return f"http://127.0.0.{1 + i % hosts}:{port}/f/{i}.xml"


def feed_body(i: int) -> bytes:
    items = "".join(
        f"<item><title>Drone plant {i}-{k} opens</title><guid>feed{i}-{k}</guid>"
        f"<description>drone production at plant {i}-{k}</description></item>"
        for k in range(3)
    )
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>Feed {i}</title>{items}</channel></rss>".encode()


class Site:
    def __init__(self, feeds: int, latency: float) -> None:
        self.latency = latency
        self.started = time.monotonic()
        self.bodies = [feed_body(i) for i in range(feeds)]
        self.etags = [hashlib.sha1(b).hexdigest()[:16].encode() for b in self.bodies]
        self.polls: dict[int, list[float]] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = _REQUEST_LINE.match(head)
                path = match.group(1).decode() if match else ""
                status, body, extra = await self.answer(path, head)
                reason = {200: b"OK", 304: b"Not Modified"}.get(status, b"Not Found")
                writer.write(
                    b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\ncontent-type: application/rss+xml\r\n%s\r\n"
                    % (status, reason, len(body), extra)
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def answer(self, path: str, head: bytes) -> tuple[int, bytes, bytes]:
        if path == "/_stats":
            return 200, json.dumps({str(k): v for k, v in self.polls.items()}).encode(), b""
        m = re.fullmatch(r"/f/(\d+)\.xml", path)
        if not m or int(m.group(1)) >= len(self.bodies):
            return 404, b"not found", b""
        i = int(m.group(1))
        self.polls.setdefault(i, []).append(round(time.monotonic() - self.started, 3))
        await asyncio.sleep(self.latency)
        etag = b'"' + self.etags[i] + b'"'
        if b"if-none-match: " + etag in head.lower():
            return 304, b"", b"etag: " + etag + b"\r\n"
        return 200, self.bodies[i], b"etag: " + etag + b"\r\n"


async def serve(args: argparse.Namespace) -> None:
    site = Site(args.feeds, args.latency)
    first = await asyncio.start_server(site.handle, "127.0.0.1", args.port, backlog=4096, reuse_address=True)
    port = first.sockets[0].getsockname()[1]
    servers = [first] + [
        await asyncio.start_server(site.handle, f"127.0.0.{n}", port, backlog=4096, reuse_address=True)
        for n in range(2, args.hosts + 1)
    ]
    print(f"READY {port}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feeds", type=int, default=500)
    p.add_argument("--hosts", type=int, default=50, help="loopback addresses 127.0.0.1 .. 127.0.0.N (N <= 254)")
    p.add_argument("--latency", type=float, default=0.2, help="seconds before each feed answer")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    if not 1 <= args.hosts <= 254:
        p.error("--hosts must be between 1 and 254")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
