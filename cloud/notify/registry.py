"""Build the configured notifiers. Adding a channel: a module with a ``Notifier`` and a line here."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.notify.base import ChannelTrouble, Notifier
from cloud.notify.settings import NotifyConfig
from cloud.notify.smtp import SmtpNotifier
from cloud.notify.telegram import TelegramNotifier
from cloud.notify.webhook import WebhookNotifier
from cloud.notify.zalo import ZaloNotifier
from cloud.storage.oauth_tokens import OAuthTokenStore


@dataclass(frozen=True, slots=True)
class CloudLinks:
    """What some notifiers need from the running cloud besides their config."""

    tokens: OAuthTokenStore | None = None  # SQL, for credentials that rotate (Zalo)
    holder: str = "cloud"  # this worker, in claims on those credentials
    trouble: ChannelTrouble | None = None  # how a channel that cannot send tells the others


def build_notifiers(
    cfg: NotifyConfig, language: str = "vi", links: CloudLinks | None = None
) -> list[Notifier]:
    links = links or CloudLinks()
    out: list[Notifier] = []
    out += [WebhookNotifier(c, language) for c in cfg.webhooks]
    out += [SmtpNotifier(c) for c in cfg.email]
    out += [TelegramNotifier(c) for c in cfg.telegram]
    if cfg.zalo and links.tokens is None:
        raise ValueError("the Zalo notifier keeps its rotating tokens in SQL: give CloudLinks(tokens=...)")
    out += [ZaloNotifier(c, links.tokens, links.holder, links.trouble) for c in cfg.zalo if links.tokens]
    return out
