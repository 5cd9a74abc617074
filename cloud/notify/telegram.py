"""Telegram Bot API: ``POST {base_url}/bot<token>/sendMessage`` with the chat id and text."""

from __future__ import annotations

import httpx

from cloud.notify.base import Notifier, SendError
from cloud.notify.messages import Message, Notice
from cloud.notify.settings import TelegramConfig


class TelegramNotifier(Notifier):
    kind = "telegram"

    def __init__(self, cfg: TelegramConfig) -> None:
        super().__init__(cfg.name, cfg.retry)
        self.cfg = cfg
        self._url = f"{cfg.base_url.rstrip('/')}/bot{cfg.token_value()}/sendMessage"
        self._client = httpx.AsyncClient(timeout=cfg.retry.timeout_s)

    @property
    def audience(self) -> str:
        return f"Telegram chat {self.cfg.chat_id}"

    async def send(self, notice: Notice, message: Message) -> None:
        resp = await self._client.post(
            self._url,
            json={"chat_id": self.cfg.chat_id, "text": message.text, "disable_web_page_preview": True},
        )
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code == 200 and body.get("ok") is True:
            return
        # never log the URL: it holds the token
        reason = f"Telegram answered HTTP {resp.status_code}: {str(body.get('description', ''))[:200]}"
        raise SendError(reason, permanent=resp.status_code in (400, 401, 403, 404))

    async def aclose(self) -> None:
        await self._client.aclose()
