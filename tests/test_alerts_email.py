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
