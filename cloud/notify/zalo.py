"""Zalo Official Account: a customer-service text message to each follower listed.

``POST {base_url}/v3.0/oa/message/cs`` with the OA's ``access_token`` header; Zalo answers
HTTP 200 with ``{"error": 0}`` on success and a negative error code otherwise.
"""

from __future__ import annotations

import httpx

from cloud.notify.base import Notifier, SendError
from cloud.notify.messages import Message, Notice
from cloud.notify.settings import ZaloConfig

#: Zalo error codes meaning the token is wrong or expired: retrying cannot help.
_AUTH_ERRORS = {-216, -124, -201}


class ZaloNotifier(Notifier):
    kind = "zalo"

    def __init__(self, cfg: ZaloConfig) -> None:
        super().__init__(cfg.name, cfg.retry)
        self.cfg = cfg
        self._url = f"{cfg.base_url.rstrip('/')}/v3.0/oa/message/cs"
        self._client = httpx.AsyncClient(timeout=cfg.retry.timeout_s)

    async def send(self, notice: Notice, message: Message) -> None:
        headers = {"access_token": self.cfg.token_value()}
        for user in self.cfg.user_ids:
            payload = {"recipient": {"user_id": user}, "message": {"text": message.text[:2000]}}
            resp = await self._client.post(self._url, json=payload, headers=headers)
            try:
                body = resp.json()
            except ValueError:
                body = {}
            code = body.get("error")
            if resp.status_code != 200 or code != 0:
                detail = str(body.get("message", ""))[:200]
                reason = f"Zalo answered HTTP {resp.status_code}, error {code}: {detail}"
                raise SendError(reason, permanent=code in _AUTH_ERRORS)

    async def aclose(self) -> None:
        await self._client.aclose()
