"""Email over SMTP (stdlib smtplib, run in a thread): STARTTLS or implicit TLS with the certificate verified,
login when a username is set, a timeout on every socket operation, one or more recipients.

smtplib verifies nothing and waits forever by default (docs/reliability.md, seen): we pass
`ssl.create_default_context()` and a timeout. Errors are classified the way RFC 5321 section 4.2.1 puts them:
4yz is transient (retry later), 5yz permanent (dead letter); a connection that fails is transient.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.errors import HeaderDefect
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid

from ..config_reader import Table, resolve_secret
from ..display import display_text
from ..errors import ConfigError, DeliveryError, PermanentDeliveryError
from .channel import ChannelContext, ChannelOptions, ChannelType
from .digest import Message, split_by_count

log = logging.getLogger(__name__)

MAX_ITEMS_PER_EMAIL = 300
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


# RFC 2047 encoded words (`=?utf-8?q?H=0D=0ABcc:_x?=`): the email package decodes them when it reads a header
# value we set, and before CPython 3.11.10/3.12.5 it wrote the decoded CR/LF out as is (CVE-2024-6923). Feed text
# never carries an encoded word we mean to honour, so `=?` is broken up wherever it appears.
_ENCODED_WORD_START = re.compile(r"=\s*\?")
# A line break not followed by folding white space starts a new header (RFC 5322 section 2.2.3).
_NEW_HEADER_LINE = re.compile(r"\r?\n(?![ \t])|\r(?!\n)")
FALLBACK_SUBJECT = "watcher alert (subject withheld: the feed's title could not be made into a safe header)"


class HeaderInjectionError(HeaderDefect, ValueError):
    """A header would serialise into more than one header line: refused, never written."""


class StrictSMTPPolicy(EmailPolicy):
    """SMTP_POLICY that refuses to generate a header with a line break in it, on every Python.

    CPython 3.11.10/3.12.5/3.13 add `verify_generated_headers` for the same purpose; this check does not depend on
    the interpreter having the fix (docs/reliability.md)."""

    def fold(self, name: str, value: str) -> str:
        return _verified(name, super().fold(name, value), self.linesep)

    def fold_binary(self, name: str, value: str) -> bytes:
        folded = super().fold_binary(name, value)
        _verified(name, folded.decode("ascii", "surrogateescape"), self.linesep)
        return folded


def _verified(name: str, folded: str, linesep: str) -> str:
    if not folded.endswith(linesep) or _NEW_HEADER_LINE.search(folded.removesuffix(linesep)):
        raise HeaderInjectionError(f"the {name} header would contain a line break: refused")
    return folded


STRICT_SMTP_POLICY = StrictSMTPPolicy(**{k: getattr(SMTP_POLICY, k) for k in ("linesep", "max_line_length")})


def header_text(value: str, limit: int = 250) -> str:
    """A header value from feed text: one line, no control characters, no RFC 2047 encoded word. email raises on
    CR/LF in a header, and one bad title must not block the outbox (docs/reliability.md)."""
    return display_text(_ENCODED_WORD_START.sub("= ?", display_text(value)), limit)


def build_email(message: Message, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """multipart/alternative: the plain text first, then the HTML (RFC 2046: the richest last).

    The subject is the one header that carries feed text. If it still cannot be written as one header line (a
    trick we did not foresee), the message goes out with a fixed subject instead: failing closed for this message
    without stopping the others."""
    mail = EmailMessage(policy=STRICT_SMTP_POLICY)
    subject = header_text(message.subject)
    try:
        STRICT_SMTP_POLICY.fold_binary("Subject", STRICT_SMTP_POLICY.header_factory("Subject", subject))
    except HeaderInjectionError:
        log.warning("email subject refused (it would add a header line); sent with a fixed subject instead")
        subject = FALLBACK_SUBJECT
    mail["Subject"] = subject
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = format_datetime(message.created_at)
    domain = sender.rpartition("@")[2].strip(" >") or "watcher.invalid"
    domain = re.sub(r"[^A-Za-z0-9.-]", "", domain) or "watcher.invalid"
    if message.delivery_ids:
        # The same items sent again (after a crash in flight) keep their Message-ID: clients may fold the twin.
        digest = hashlib.sha256(",".join(map(str, sorted(message.delivery_ids))).encode()).hexdigest()[:24]
        mail["Message-ID"] = f"<watcher.{message.kind}.{digest}@{domain}>"
    else:
        mail["Message-ID"] = make_msgid("watcher", domain=domain)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    mail["X-Watcher-Channel"] = header_text(message.channel, 80)
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    return mail


class EmailChannel:
    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        recipients: Sequence[str],
        port: int | None = None,
        security: str = "starttls",
        username: str = "",
        password_env: str = "",
        timeout: timedelta = timedelta(seconds=30),
        ssl_context: ssl.SSLContext | None = None,  # tests pass one that trusts their own certificate
    ):
        if security not in DEFAULT_PORTS:
            raise ValueError(f"security must be one of {', '.join(DEFAULT_PORTS)}")
        self.name = name
        self.host = host
        self.port = port or DEFAULT_PORTS[security]
        self.security = security
        self.username = username
        self.password_env = password_env
        self.sender = sender
        self.recipients = tuple(recipients)
        self.timeout_s = timeout.total_seconds()
        self.ssl_context = ssl_context

    def split(self, message: Message) -> Sequence[Message]:
        return split_by_count(message, MAX_ITEMS_PER_EMAIL)

    def _password(self) -> str:
        if not self.username:
            return ""
        if not self.password_env:
            raise PermanentDeliveryError(f"email channel {self.name!r}: username is set but password_env is not")
        try:
            return resolve_secret(self.password_env, what=f"the SMTP password of channel {self.name!r}")
        except ConfigError as e:  # retryable: set the variable, restart, and the queue drains
            raise DeliveryError(
                f"email channel {self.name!r}: environment variable {self.password_env} is not set"
            ) from e

    async def send(self, message: Message) -> None:
        password = self._password()
        mail = build_email(message, sender=self.sender, recipients=self.recipients)
        await asyncio.to_thread(self._deliver, mail, password)

    def _deliver(self, mail: EmailMessage, password: str) -> None:
        where = f"email channel {self.name!r} ({self.host}:{self.port})"
        context = self.ssl_context or ssl.create_default_context()
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            try:
                smtp.ehlo()
                if self.security == "starttls":
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, password)
                refused = smtp.send_message(mail, from_addr=self.sender, to_addrs=list(self.recipients))
            except BaseException:
                smtp.close()
                raise
            # Sent. A failing QUIT must not turn a delivered message into a retry (a duplicate).
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            text = "; ".join(f"{rcpt}: {code} {_reply(msg)}" for rcpt, (code, msg) in e.recipients.items())
            error = DeliveryError if any(400 <= c < 500 for c in codes) else PermanentDeliveryError
            raise error(f"{where}: every recipient refused: {text}"[:500]) from e
        except smtplib.SMTPResponseException as e:
            error = DeliveryError if 400 <= e.smtp_code < 500 or e.smtp_code < 200 else PermanentDeliveryError
            raise error(f"{where}: {e.smtp_code} {_reply(e.smtp_error)}") from e
        except smtplib.SMTPNotSupportedError as e:  # e.g. STARTTLS asked of a server that does not offer it
            raise PermanentDeliveryError(f"{where}: {e}") from e
        except ssl.SSLCertVerificationError as e:
            raise DeliveryError(f"{where}: the server's certificate is not trusted: {e.verify_message}") from e
        except (smtplib.SMTPException, OSError) as e:  # refused, reset, timed out, TLS handshake failed
            raise DeliveryError(f"{where}: {type(e).__name__}: {e}"[:500]) from e
        if refused:
            # Some recipients took it; sending again would duplicate it for them. Record, do not retry.
            log.warning("%s: some recipients refused: %s", where, ", ".join(refused))


def _reply(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return display_text(text, 200)


@dataclass(frozen=True, slots=True)
class EmailOptions(ChannelOptions):
    host: str = ""
    sender: str = ""  # the `from` key
    recipients: tuple[str, ...] = ()  # the `to` key
    port: int | None = None  # None: 587 for starttls, 465 for tls, 25 for none
    security: str = "starttls"
    username: str = ""
    password_env: str = ""
    timeout: timedelta = timedelta(seconds=30)

    def secret_envs(self) -> dict[str, str]:
        return {"password_env": self.password_env} if self.password_env else {}


def _read_options(t: Table) -> EmailOptions:
    options = EmailOptions(
        host=t.text("host", ""),
        port=t.number("port", None, minimum=1),
        security=t.text("security", "starttls", choices=tuple(DEFAULT_PORTS)),
        username=t.text("username", ""),
        password_env=t.text("password_env", ""),
        sender=t.text("from", ""),
        recipients=t.strings("to"),
        timeout=t.duration("timeout", timedelta(seconds=30)),
    )
    for key, value in (("host", options.host), ("from", options.sender), ("to", options.recipients)):
        if not value:
            t.missing(key, "a value: email channels need it")
    return options


def _build(name: str, o: EmailOptions, context: ChannelContext) -> EmailChannel:
    return EmailChannel(
        name,
        host=o.host,
        port=o.port,
        security=o.security,
        username=o.username,
        password_env=o.password_env,
        sender=o.sender,
        recipients=o.recipients,
        timeout=o.timeout,
    )


EMAIL = ChannelType("email", EmailOptions, _read_options, _build)
