"""JSON webhook: one POST per notice, signed with HMAC-SHA256 so the receiver can trust it.

Body: ``{"notice": {...}, "title": "...", "text": "...", "url": "...", "language": "vi"}``
(``url``: the alert's page in the web UI, empty when ``web.public_url`` is not set). Header
``X-Ciot-Signature: sha256=<hex HMAC of the exact body>`` when a secret is set (GitHub's
scheme, which most receivers already know how to check).
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from cloud.notify.base import Notifier, SendError
from cloud.notify.messages import Message, Notice
from cloud.notify.settings import WebhookConfig

SIGNATURE_HEADER = "X-Ciot-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier):
    kind = "webhook"

    def __init__(self, cfg: WebhookConfig, language: str = "vi") -> None:
        super().__init__(cfg.name, cfg.retry)
        self.cfg = cfg
        self.language = language
        self._secret = cfg.secret_value()
        self._client = httpx.AsyncClient(timeout=cfg.retry.timeout_s)

    @property
    def audience(self) -> str:
        u = httpx.URL(self.cfg.url)
        return f"{u.scheme}://{u.host}{f':{u.port}' if u.port else ''}{u.path}"  # no query, no login

    async def send(self, notice: Notice, message: Message) -> None:
        body = json.dumps(
            {
                "notice": notice.to_dict(),
                "title": message.title,
                "text": message.text,
                "url": message.url,
                "language": self.language,
            },
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        resp = await self._client.post(self.cfg.url, content=body, headers=headers)
        if resp.status_code >= 300:
            # 4xx other than 408/429 will not get better by retrying
            permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 429)
            raise SendError(f"HTTP {resp.status_code} from {self.cfg.url}", permanent=permanent)

    async def aclose(self) -> None:
        await self._client.aclose()
