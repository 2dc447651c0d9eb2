"""A scripted webhook endpoint on the tests' LocalSite: records JSON payloads, answers as told.

hook = Endpoint(site, "/slack")
hook.then(429, headers={"retry-after": "120"}).then(200)   # answers in order, then 200 "ok" forever
hook.then(hang=True)                                       # accept and never answer (until the site stops)
hook.payloads                                              # every JSON body received, in order
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field

from tests.helpers.localsite import Handler, LocalSite, hang


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class Endpoint:
    def __init__(self, site: LocalSite, path: str = "/hook"):
        self.site = site
        self.path = path
        self.script: deque[Answer] = deque()
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.hits = 0
        self.url = site.add(path, handler=self._answer)

    def then(
        self, status: int = 200, body: bytes | str = b"ok", *, headers: dict[str, str] | None = None, hang: bool = False
    ) -> Endpoint:
        with self.lock:
            self.script.append(Answer(status, body.encode() if isinstance(body, str) else body, headers or {}, hang))
        return self

    def _answer(self, handler: Handler) -> None:
        with self.lock:
            answer = self.script.popleft() if self.script else Answer()
            self.hits += 1
            self.arrived.notify_all()
        if answer.hang:
            return hang(handler)
        handler.send_bytes(answer.status, answer.body, {"content-type": "text/plain", **answer.headers})

    def wait_for(self, hits: int, timeout: float = 20.0) -> bool:
        """Block (call it in a thread from async tests) until `hits` requests have arrived."""
        with self.lock:
            return self.arrived.wait_for(lambda: self.hits >= hits, timeout)

    @property
    def requests(self):
        return self.site.requests_to(self.path)

    @property
    def payloads(self) -> list:
        return [json.loads(r.body) for r in self.requests]
