"""Zalo Official Account: a consultation ("tư vấn") text message to each follower listed.

``POST {base_url}/v3.0/oa/message/cs`` with the OA's ``access_token`` header; Zalo answers
HTTP 200 with ``{"error": 0}`` on success and a negative error code otherwise. The token
comes from ``zalo_token.ZaloToken``, which renews it; when Zalo calls it expired or invalid
anyway, it is renewed once and the message sent again. Why consultation messages, and
what that asks of the followers: cloud/notify/README.md.
"""

from __future__ import annotations

import logging

import httpx

from cloud.notify.base import ChannelTrouble, Notifier, SendError
from cloud.notify.messages import Message, Notice
from cloud.notify.settings import ZaloConfig
from cloud.notify.zalo_token import TOKEN_ERRORS, ZaloToken
from cloud.storage.oauth_tokens import OAuthTokenStore

log = logging.getLogger(__name__)

#: Zalo error codes about one follower that retrying cannot fix: not a follower (-213),
#: no interaction with the OA within 7 days (-230, -232), banned or gone (-227), blocked (-244).
_FOLLOWER_ERRORS = {-213, -227, -230, -232, -244}
#: Codes about the app or OA itself (revoked permission, unverified OA, quota): not retried.
_PERMANENT = {-201, -204, -205, -209, -211, -212, -219, -221, -223, -224}


class ZaloNotifier(Notifier):
    kind = "zalo"

    def __init__(
        self, cfg: ZaloConfig, store: OAuthTokenStore, holder: str, trouble: ChannelTrouble | None = None
    ) -> None:
        super().__init__(cfg.name, cfg.retry)
        self.cfg = cfg
        self._url = f"{cfg.base_url.rstrip('/')}/v3.0/oa/message/cs"
        self._client = httpx.AsyncClient(timeout=cfg.retry.timeout_s)
        self.token = ZaloToken(cfg, store, holder, self._client, trouble)
        #: Followers already reached per notice, so a retry does not message them twice.
        self._reached: dict[tuple[int, str, str, float], set[str]] = {}

    def start(self) -> None:
        self.token.start()

    @property
    def problem(self) -> str | None:
        return self.token.problem

    async def _post(self, token: str, user: str, text: str) -> tuple[int, int | None, str]:
        payload = {"recipient": {"user_id": user}, "message": {"text": text}}
        resp = await self._client.post(self._url, json=payload, headers={"access_token": token})
        try:
            body = resp.json()
        except ValueError:
            body = {}
        code = body.get("error") if isinstance(body, dict) else None
        detail = str(body.get("message", ""))[:200] if isinstance(body, dict) else ""
        return resp.status_code, code, detail

    @property
    def audience(self) -> str:
        return "Zalo followers " + ", ".join(self.cfg.user_ids)

    async def send(self, notice: Notice, message: Message) -> None:
        key = (notice.alert_id, notice.key, notice.kind, notice.at)
        if len(self._reached) > 1000:  # notices given up while half sent: forget them
            self._reached.clear()
        reached = self._reached.setdefault(key, set())
        token = await self.token.get()
        renewed = False
        refused: list[str] = []
        for user in self.cfg.user_ids:
            if user in reached:
                continue
            status, code, detail = await self._post(token, user, message.text[:2000])
            if status == 200 and code in TOKEN_ERRORS and not renewed:
                renewed = True  # expired or revoked early: renew once, send again
                token = await self.token.rejected(token)
                status, code, detail = await self._post(token, user, message.text[:2000])
            if status == 200 and code == 0:
                reached.add(user)
                continue
            reason = f"Zalo answered HTTP {status}, error {code}: {detail}"
            if code not in _FOLLOWER_ERRORS:
                raise SendError(reason, permanent=code in _PERMANENT)
            log.error(
                "notifier %s cannot reach follower %s (%s): a consultation message reaches only followers "
                "who messaged the OA within 7 days; ask them to send the OA any message",
                self.name,
                user,
                reason,
                extra={"notifier": self.name, "alert_id": notice.alert_id},
            )
            refused.append(user)
        del self._reached[key]
        if refused:
            raise SendError(f"followers not reachable: {', '.join(refused)}", permanent=True)

    async def aclose(self) -> None:
        await self.token.aclose()
        await self._client.aclose()
