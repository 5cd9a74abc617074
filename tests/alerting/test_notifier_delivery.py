"""Notices reach real servers: a local SMTP server (aiosmtpd) and a local HTTP server.

Telegram cannot be reached from here; the local HTTP server fakes its API (paths, headers
and answers as documented) so the notifier's real HTTP code is exercised. Zalo, with its
expiring tokens, has its own stand-in and tests (test_zalo_token.py).
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import socket
import time
from collections.abc import Iterator
from email.message import Message as EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from alerting_helpers import inventory
from local_http import Request, local_http

from cloud.notify.dispatch import Dispatcher
from cloud.notify.messages import Notice, render
from cloud.notify.settings import (
    RetryConfig,
    SmtpConfig,
    TelegramConfig,
    WebhookConfig,
)
from cloud.notify.smtp import SmtpNotifier
from cloud.notify.telegram import TelegramNotifier
from cloud.notify.webhook import SIGNATURE_HEADER, WebhookNotifier

FAST = RetryConfig(initial_s=0.05, max_s=0.2, attempts=50, timeout_s=2.0)
T0 = 1_800_000_000.0  # 15/01/2027 08:00 UTC = 15:00 in Việt Nam
OPEN = Notice("open", 7, "node:dr-cam-01", "node", "dr-cam-01", "da-ron", "silent", "critical", T0, T0 + 18)
COMMUNE = Notice(
    "open",
    8,
    "commune:tu-tra",
    "commune",
    "tu-tra",
    "tu-tra",
    "uplink",
    "critical",
    T0,
    T0 + 20,
    down=5,
    total=6,
)
RESOLVED = Notice(
    "resolve", 7, "node:dr-cam-01", "node", "dr-cam-01", "da-ron", "silent", "critical", T0, T0 + 200, 200.0
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_messages_are_vietnamese_by_default_and_english_on_request() -> None:
    inv = inventory()
    vi = render(OPEN, inv)
    assert (
        vi.title == "🔴 CẢNH BÁO: Camera dr-cam-01: không còn gửi tín hiệu (mất điện, đứt cáp hoặc treo máy)"
    )
    assert "Tại da-ron-site" not in vi.text and "Đạ Ròn" in vi.text
    assert "Từ 15:00:00 15/01/2027" in vi.text
    assert render(COMMUNE, inv).title == (
        "🔴 CẢNH BÁO: Mất đường truyền hoặc mất điện tại Tu Tra: 5 trên 6 điểm mất tín hiệu"
    )
    assert (
        render(COMMUNE, inv, "en").title == "🔴 ALERT: Uplink or power outage in Tu Tra: 5 of 6 sites silent"
    )
    assert "Sau 3 phút 20 giây" in render(RESOLVED, inv).text
    assert "After 3 min 20 s" in render(RESOLVED, inv, "en").text


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.mails.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, _Inbox]]:
    inbox = _Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    ctl.start()
    yield ctl, inbox
    ctl.stop()


async def test_email_arrives_at_a_real_smtp_server_in_vietnamese(
    smtp_server: tuple[Controller, _Inbox],
) -> None:
    ctl, inbox = smtp_server
    cfg = SmtpConfig(
        host="127.0.0.1",
        port=ctl.port,
        starttls=False,
        sender="canh-bao@commune-iot.test",
        recipients=["ky-thuat@commune-iot.test"],
        retry=FAST,
    )
    d = Dispatcher([SmtpNotifier(cfg)], inventory())
    d.start()
    d.submit(OPEN)
    d.submit(RESOLVED)
    assert await d.wait_idle(10)
    await d.stop()
    assert [m["Subject"] for m in inbox.mails] == [
        "🔴 CẢNH BÁO: Camera dr-cam-01: không còn gửi tín hiệu (mất điện, đứt cáp hoặc treo máy)",
        "✅ ĐÃ KHÔI PHỤC: Camera dr-cam-01: không còn gửi tín hiệu (mất điện, đứt cáp hoặc treo máy)",
    ]
    assert inbox.mails[0]["To"] == "ky-thuat@commune-iot.test"
    body = inbox.mails[1].get_body()
    assert body is not None and "Sau 3 phút 20 giây" in body.get_content()


async def test_webhook_is_signed_and_a_dead_endpoint_is_retried_until_it_answers() -> None:
    failures = 3

    def respond(_req: Request, index: int) -> tuple[int, dict[str, Any]]:
        return (503, {}) if index < failures else (200, {"ok": True})

    with local_http(respond) as server:
        cfg = WebhookConfig(url=server.url + "/hook", secret="s3cret", retry=FAST)
        d = Dispatcher([WebhookNotifier(cfg)], inventory())
        d.start()
        d.submit(OPEN)
        assert await d.wait_idle(10)
        await d.stop()
    assert len(server.requests) == failures + 1
    last = server.requests[-1]
    expected = "sha256=" + hmac.new(b"s3cret", last.body, hashlib.sha256).hexdigest()
    assert last.headers[SIGNATURE_HEADER.lower()] == expected
    payload = last.json()
    assert payload["notice"]["subject"] == "dr-cam-01" and payload["notice"]["kind"] == "open"
    assert payload["language"] == "vi" and payload["title"].startswith("🔴 CẢNH BÁO")
    assert d.stats["webhook"].sent == 1 and d.stats["webhook"].failed_attempts == failures


async def test_a_webhook_with_nobody_listening_is_retried_and_submit_never_waits() -> None:
    port = _free_port()  # nothing listens here yet
    cfg = WebhookConfig(url=f"http://127.0.0.1:{port}/hook", retry=FAST)
    d = Dispatcher([WebhookNotifier(cfg)], inventory())
    d.start()
    t0 = time.perf_counter()
    for i in range(200):
        d.submit(Notice("open", i, f"node:n{i}", "node", f"n{i}", "da-ron", "will", "critical", T0, T0))
    assert time.perf_counter() - t0 < 0.05  # 200 notices queued in well under a millisecond each
    await asyncio.sleep(0.5)
    assert d.stats["webhook"].failed_attempts >= 2 and d.stats["webhook"].sent == 0
    await d.stop(flush_s=0)


async def test_one_dead_channel_does_not_delay_another(smtp_server: tuple[Controller, _Inbox]) -> None:
    ctl, inbox = smtp_server
    dead = WebhookNotifier(WebhookConfig(url=f"http://127.0.0.1:{_free_port()}/", retry=FAST))
    mail = SmtpNotifier(
        SmtpConfig(
            host="127.0.0.1", port=ctl.port, starttls=False, sender="a@b.test", recipients=["c@d.test"]
        )
    )
    d = Dispatcher([dead, mail], inventory())
    d.start()
    d.submit(OPEN)
    for _ in range(100):
        if inbox.mails:
            break
        await asyncio.sleep(0.05)
    assert len(inbox.mails) == 1
    await d.stop(flush_s=0)


async def test_telegram_bot_api_call() -> None:
    with local_http(lambda _r, _i: (200, {"ok": True, "result": {"message_id": 1}})) as server:
        cfg = TelegramConfig(base_url=server.url, token="123:ABC", chat_id="-100777", retry=FAST)
        d = Dispatcher([TelegramNotifier(cfg)], inventory(), language="en")
        d.start()
        d.submit(COMMUNE)
        assert await d.wait_idle(10)
        await d.stop()
    (req,) = server.requests
    assert req.path == "/bot123:ABC/sendMessage"
    assert req.json()["chat_id"] == "-100777"
    assert req.json()["text"].startswith("🔴 ALERT: Uplink or power outage in Tu Tra: 5 of 6 sites silent")


async def test_telegram_refusing_the_token_is_not_retried() -> None:
    answer = {"ok": False, "error_code": 401, "description": "Unauthorized"}
    with local_http(lambda _r, _i: (401, answer)) as server:
        cfg = TelegramConfig(base_url=server.url, token="bad", chat_id="1", retry=FAST)
        d = Dispatcher([TelegramNotifier(cfg)], inventory())
        d.start()
        d.submit(OPEN)
        assert await d.wait_idle(10)
        await d.stop()
    assert len(server.requests) == 1 and d.stats["telegram"].given_up == 1
