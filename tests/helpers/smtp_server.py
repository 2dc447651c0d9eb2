"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd in a thread): records what it receives, answers on cue.

server = SmtpServer().start()            # plain SMTP; SmtpServer(tls_context=ctx) offers STARTTLS
server.replies.append("451 4.3.0 try later")   # the next DATA is answered with this instead of 250
server.messages[0].email["Subject"]
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def email(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_DATA(self, smtp, session, envelope) -> str:
        with self.server.lock:
            reply = self.server.replies.popleft() if self.server.replies else None
            if reply and not reply.startswith("250"):
                return reply
            self.server.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content)
            )
        return "250 2.0.0 OK"


class SmtpServer:
    def __init__(
        self,
        port: int | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
    ):
        self.port = port or free_port()
        self.messages: list[Received] = []
        self.replies: deque[str] = deque()
        self.lock = threading.Lock()
        self.logins: list[str] = []
        kwargs: dict = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if login is not None:
            kwargs.update(authenticator=self._authenticator(login), auth_require_tls=tls_context is not None)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticator(self, login: tuple[str, str]):
        def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and (auth_data.login.decode(), auth_data.password.decode()) == login
            )
            if ok:
                self.logins.append(auth_data.login.decode())
            return AuthResult(success=ok, handled=False)

        return check

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
