"""The listener: uvicorn serving the application on the caller's own event loop (the only uvicorn user).

The socket is bound here, before uvicorn sees it, so a busy or wrong address is an OSError the caller turns into
a located config problem (uvicorn itself would log and exit the process). uvicorn's `serve()` would take over
SIGINT and SIGTERM, which belong to the daemon: we drive its startup, main loop and shutdown ourselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn

from ..ops import parse_address

STOP_GRACE_S = 2.0  # requests in progress get this long at stop (the daemon's whole stop stays under 10 s)


class WebServer:
    """`url = await WebServer("127.0.0.1:9108", app).start()`; `await server.close()`."""

    def __init__(self, address: str, app: Any) -> None:
        self.host, self.port = parse_address(address)
        self.app = app
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> str:
        """Bind and serve; raises OSError (busy port, unknown address) or ValueError (malformed address)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        infos = socket.getaddrinfo(self.host, self.port, family=0, type=socket.SOCK_STREAM)
        family = infos[0][0] if infos else family
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4] if infos else (self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]  # the real one when asked for port 0
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # watcher's logging (logs.py) stays in charge
            access_log=False,
            server_header=False,
            proxy_headers=False,  # behind a proxy, the page needs no client address it could be lied to about
            timeout_graceful_shutdown=int(STOP_GRACE_S),
            timeout_keep_alive=5,
            h11_max_incomplete_event_size=16 * 1024,
        )
        server = uvicorn.Server(config)
        config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server
        self._task = asyncio.ensure_future(server.main_loop())
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self._server.shutdown(sockets=[self._socket] if self._socket else None)
        self._server = None
