"""Email through a real SMTP server (aiosmtpd on 127.0.0.1): MIME parts, headers, links, escaping, faults, TLS."""

from __future__ import annotations

import re
import ssl
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.alerts_support import (
    T0,
    add_articles,
    article,
    cli_obj,
    make_config,
    open_store,
    statuses,
)
from tests.helpers.smtp_server import SmtpServer, free_port
from watcher.alerts.email import EmailChannel
from watcher.alerts.outbox import Dispatcher, build_channels
from watcher.cli.alerts import alerts

HOSTILE_TITLE = "Северная Корея <!channel> <script>alert(1)</script>\r\nBcc: victim@example.com " + "Z" * 2000


def email_channels(port: int, **options) -> dict:
    return {
        "mail": {
            "type": "email",
            "mode": "digest",
            "schedule": "daily at 07:00",
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from": "watcher <watcher@example.org>",
            "to": ["analyst@example.org", "desk@example.org"],
            "timeout": "5s",
            **options,
        }
    }


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def setup(tmp_path, port, **options):
    config = make_config(email_channels(port, **options), timezone="Europe/Berlin")
    store = open_store(tmp_path, config)
    store.set_last_digest_at("mail", datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    return config, store, Dispatcher(config, store)


async def test_digest_with_three_topics_arrives_as_multipart_email(tmp_path, smtp):
    config, store, dispatcher = setup(tmp_path, smtp.port)
    published = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)
    add_articles(
        store,
        config,
        [
            article(
                "drone_cooperation", title="Russia and North Korea to build Shahed-type drones", published_at=published
            ),
            article("drone_cooperation", title="Drone plant at Alabuga hires North Koreans"),
            article(
                "troop_deployment", title="North Korean troops rotate out of Kursk", snippet="[[troops]] left [[Kursk]]"
            ),
            article("arms_transfers", title="Shell shipments continue", url="javascript:alert(document.cookie)"),
            article("drone_cooperation", title=HOSTILE_TITLE),
        ],
        T0 - timedelta(hours=2),
    )
    report = await dispatcher.run(T0)
    assert report.sent == 5 and report.messages == 1
    (received,) = smtp.messages
    assert received.mail_from == "watcher@example.org"
    assert received.rcpt_tos == ["analyst@example.org", "desk@example.org"]  # no Bcc smuggled in by the title
    mail = received.email
    assert mail["Subject"] == "watcher: 5 new items — drone_cooperation (3), troop_deployment (1), arms_transfers (1)"
    assert mail["Date"] and re.fullmatch(r"<watcher\.digest\.[0-9a-f]{24}@example\.org>", mail["Message-ID"])
    assert mail["Bcc"] is None and mail.get_content_type() == "multipart/alternative"
    text_part, html_part = list(mail.iter_parts())
    assert (text_part.get_content_type(), html_part.get_content_type()) == ("text/plain", "text/html")
    text, html = text_part.get_content(), html_part.get_content()
    # Grouped by topic in config order, with source, local time, terms and the marked snippet.
    assert (
        text.index("== Joint drone production (3) [drone_cooperation]")
        < text.index("== North Korean troops at the front (1) [troop_deployment]")
        < text.index("== Shells and missiles (1) [arms_transfers]")
    )
    # A short index first: each topic by its description, with its count.
    index = text[text.index("In this digest:") : text.index("== ")]
    assert [line.split(None, 1) for line in index.strip().splitlines()[1:]] == [
        ["3", "Joint drone production"],
        ["1", "North Korean troops at the front"],
        ["1", "Shells and missiles"],
    ]
    assert html.index("Joint drone production") < html.index("<h2")  # the index comes before the items too
    assert "Reuters World · published 2026-11-26 07:30 CET" in text and "[troops] left [Kursk]" in text
    assert '<mark style="background:#fff3a0;color:#1f2328;font-weight:bold;">troops</mark>' in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert len(hrefs) == 4 and all(h.startswith("https://news.example.com/story/") for h in hrefs)
    # The hostile title: escaped, one line, truncated, readable.
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;!channel&gt;" in html
    assert "Северная Корея" in html and "Северная Корея <!channel> <script>" in text
    title_line = next(line for line in text.splitlines() if "Северная" in line)
    assert "Bcc: victim@example.com" in title_line and len(title_line) <= 305
    assert "<link" not in html and "<img" not in html and "<style" not in html  # inline styles, nothing external
    assert statuses(store) == {"sent": 5}


async def test_smtp_down_then_up_delivers_everything_once(tmp_path):
    port = free_port()
    config, store, dispatcher = setup(tmp_path, port)
    add_articles(store, config, [article("troop_deployment") for _ in range(3)], T0 - timedelta(hours=1))
    report = await dispatcher.run(T0)  # nothing listening
    assert report.retried == 3 and "ConnectionRefusedError" in report.outcomes[0].error
    server = SmtpServer(port).start()
    try:
        await dispatcher.run(T0 + timedelta(seconds=30))  # still backing off
        assert server.messages == []
        await dispatcher.run(T0 + timedelta(minutes=1))
        await dispatcher.run(T0 + timedelta(minutes=2))
        await dispatcher.run(T0 + timedelta(days=1, minutes=1))  # the next slot: nothing left
        assert len(server.messages) == 1 and statuses(store) == {"sent": 3}
    finally:
        server.stop()


async def test_4xx_is_retried_and_5xx_is_a_dead_letter_until_alerts_retry(tmp_path, smtp):
    from click.testing import CliRunner

    config, store, dispatcher = setup(tmp_path, smtp.port)
    add_articles(store, config, [article("drone_cooperation")], T0 - timedelta(hours=1))
    smtp.replies.extend(["451 4.3.0 Temporary local problem", "550 5.7.1 Message rejected as spam"])
    report = await dispatcher.run(T0)
    assert report.retried == 1 and "451" in report.outcomes[0].error
    report = await dispatcher.run(T0 + timedelta(minutes=1))
    assert report.dead == 1 and statuses(store) == {"dead": 1}
    await dispatcher.run(T0 + timedelta(days=1, minutes=5))
    assert smtp.messages == []
    runner = CliRunner()
    listed = runner.invoke(alerts, ["list", "--failed"], obj=cli_obj(config, store))
    assert "550 5.7.1 Message rejected as spam" in listed.output and "dead" in listed.output
    result = runner.invoke(alerts, ["retry", "--channel", "mail"], obj=cli_obj(config, store))
    assert result.exit_code == 0 and "1 failed alert(s) queued again" in result.output
    await dispatcher.run(datetime.now(UTC) + timedelta(seconds=1))
    assert len(smtp.messages) == 1 and statuses(store) == {"sent": 1}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made with the openssl command line."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, cert


async def test_starttls_verifies_the_certificate_and_logs_in(tmp_path, certificate, monkeypatch):
    server_context, cert = certificate
    server = SmtpServer(tls_context=server_context, login=("watcher", "s3cret")).start()
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    try:
        config = make_config(
            email_channels(server.port, security="starttls", username="watcher", password_env="TEST_SMTP_PASSWORD")
        )
        store = open_store(tmp_path, config)
        add_articles(store, config, [article("sanctions")], T0)  # urgent: goes at once on a digest channel
        report = await Dispatcher(config, store).run(T0)  # the system's CAs do not know our certificate
        assert report.retried == 1 and "certificate is not trusted" in report.outcomes[0].error
        assert server.messages == []
        trusting = ssl.create_default_context(cafile=str(cert))
        channel = build_channels(config)[config.channels[0].name]
        assert isinstance(channel, EmailChannel)
        channel.ssl_context = trusting
        await Dispatcher(config, store, {"mail": channel}).run(T0 + timedelta(minutes=1))
        assert len(server.messages) == 1 and server.logins == ["watcher"]
        assert server.messages[0].email["Subject"].startswith("watcher alert: sanctions — ")
    finally:
        server.stop()


async def test_missing_password_variable_is_retried_not_lost(tmp_path, smtp, monkeypatch):
    monkeypatch.delenv("NOT_SET_PASSWORD", raising=False)
    config, store, dispatcher = setup(tmp_path, smtp.port, username="u", password_env="NOT_SET_PASSWORD")
    add_articles(store, config, [article("sanctions")], T0)
    report = await dispatcher.run(T0)
    assert report.retried == 1 and "NOT_SET_PASSWORD is not set" in report.outcomes[0].error


# CVE-2024-6923: RFC 2047 encoded words in a title that the email package (before 3.11.10/3.12.5) decodes back into
# CR/LF when it writes the Subject, adding headers or ending the header block.
ENCODED_WORD_EXPLOITS = [
    "Drone factory =?utf-8?q?H=0D=0ABcc:_victim@example.org?=",
    "Drone factory =?utf-8?q?H=0D=0AContent-Type:_text/html?=",
    "Drone factory =?utf-8?q?H=0D=0A=0D=0AATTACKER_TEXT_FIRST?=",
    "Drone factory =?utf-8?b?SA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5vcmc=?=",  # the same Bcc, base64
    "Drone factory = ?utf-8?q?H=0D=0ABcc:_victim@example.org?= =?UTF-8?Q?=0ABcc:_victim@example.org?=",
]


async def test_encoded_words_in_a_title_add_no_header_through_a_real_smtp_server(tmp_path, smtp):
    config, store, dispatcher = setup(tmp_path, smtp.port, mode="immediate")
    # The exploit titles are variants of one headline: grouped as one story they would make one alert. Each must
    # go out on its own here, so stories are off (a window of 0).
    store.configure_stories(timedelta(0))
    titles = [*ENCODED_WORD_EXPLOITS, "Drone plant at Alabuga hires North Koreans"]
    for i, title in enumerate(titles):
        add_articles(store, config, [article("drone_cooperation", title=title)], T0 - timedelta(minutes=10 - i))
        report = await dispatcher.run(T0 + timedelta(minutes=i))
        assert report.sent == 1, report.outcomes  # one hostile title does not stop the outbox
    assert len(smtp.messages) == len(titles)
    for received in smtp.messages:
        assert received.rcpt_tos == ["analyst@example.org", "desk@example.org"]
        head, _, body = received.raw.partition(b"\r\n\r\n")
        headers = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ").split(b"\r\n")  # unfolded lines
        names = [line.split(b":", 1)[0].lower() for line in headers]
        assert b"bcc" not in names and names.count(b"content-type") == 1, head
        assert all(b"ATTACKER" not in line for line in headers if not line.startswith(b"Subject:"))
        assert body.startswith(b"--=====")  # the MIME body comes first, intact, not the attacker's text
        mail = received.email
        assert mail["Bcc"] is None and mail.get_content_type() == "multipart/alternative"
        assert "\n" not in mail["Subject"] and "\r" not in mail["Subject"]
        assert mail["Subject"].startswith("watcher alert: drone_cooperation — Drone ")
        text_part, html_part = list(mail.iter_parts())
        assert text_part.get_content_type() == "text/plain" and html_part.get_content_type() == "text/html"
        assert "(1) [drone_cooperation] ==" in text_part.get_content()  # the body intact, after the headers
    assert statuses(store) == {"sent": len(titles)}


def test_a_header_that_would_break_a_line_is_refused_and_the_message_still_goes_out(monkeypatch, caplog):
    from dataclasses import replace
    from email.message import EmailMessage

    from watcher.alerts import email as email_module
    from watcher.alerts.digest import RenderSettings, sample_message

    mail = EmailMessage(policy=email_module.STRICT_SMTP_POLICY)
    mail["Subject"] = ENCODED_WORD_EXPLOITS[0]  # set directly, skipping the cleaning: the policy alone refuses it
    mail.set_content("x")
    with pytest.raises(email_module.HeaderInjectionError):
        mail.as_bytes()
    # With the cleaning gone, the exploit reaches the policy check in build_email: a fixed subject, still sent.
    monkeypatch.setattr(email_module, "header_text", lambda value, limit=250: value)
    message = replace(sample_message("mail", T0, RenderSettings()), subject=ENCODED_WORD_EXPLOITS[0])
    built = email_module.build_email(message, sender="watcher@example.org", recipients=["a@example.org"])
    raw = built.as_bytes()
    assert b"Bcc" not in raw and built["Subject"] == email_module.FALLBACK_SUBJECT
    assert "subject withheld" in caplog.text or "fixed subject" in caplog.text


async def test_a_send_recorded_while_another_process_holds_the_write_lock_is_delivered_exactly_once(
    tmp_path, smtp, monkeypatch
):
    """The hostile run's duplicate: the send succeeded, mark_sent met a write lock held past busy_timeout, and the
    live daemon sent again when the lease ran out. Now the mark is retried until it lands; nothing resends."""
    import asyncio
    import logging
    import sqlite3

    import watcher.store.base

    monkeypatch.setattr(watcher.store.base, "BUSY_TIMEOUT_MS", 300)  # the lock is held longer than this
    config = make_config(email_channels(smtp.port, mode="immediate"))
    store = open_store(tmp_path, config)
    add_articles(store, config, [article("drone_cooperation")], T0 - timedelta(minutes=1))
    holder = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)

    class LockAfterSending(EmailChannel):
        def _deliver(self, mail, password):
            super()._deliver(mail, password)
            holder.execute("BEGIN IMMEDIATE")  # another connection takes the write lock right after the send

    channel = LockAfterSending(
        "mail", host="127.0.0.1", port=smtp.port, security="none", sender="w@example.org", recipients=["a@example.org"]
    )
    not_recorded = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record):
            if "not recorded yet" in record.getMessage():
                not_recorded.set()

    watch = Watch()
    logging.getLogger("watcher.alerts").addHandler(watch)
    try:
        first = asyncio.create_task(Dispatcher(config, store, {"mail": channel}).run(T0))
        waiting = asyncio.ensure_future(not_recorded.wait())
        # sent, and the mark failed on the lock at least once (or, without the retry, the pass gave up)
        await asyncio.wait({first, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        # Meanwhile a later pass, and a dispatcher that replaced this one on a reload, send nothing.
        later = await Dispatcher(config, store, {"mail": channel}).run(T0 + timedelta(minutes=10))
        assert later.sent == 0 and len(smtp.messages) == 1
        holder.execute("ROLLBACK")  # the other process lets go
        report = await first
    finally:
        logging.getLogger("watcher.alerts").removeHandler(watch)
        holder.close()
    assert report.sent == 1 and statuses(store) == {"sent": 1}
    after_lease = await Dispatcher(config, store, {"mail": channel}).run(T0 + timedelta(minutes=30))
    assert after_lease.sent == 0 and len(smtp.messages) == 1  # exactly one delivery
