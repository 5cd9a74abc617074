"""Build the configured notifiers. Adding a channel: a module with a ``Notifier`` and a line here."""

from __future__ import annotations

from cloud.notify.base import Notifier
from cloud.notify.settings import NotifyConfig
from cloud.notify.smtp import SmtpNotifier
from cloud.notify.telegram import TelegramNotifier
from cloud.notify.webhook import WebhookNotifier
from cloud.notify.zalo import ZaloNotifier


def build_notifiers(cfg: NotifyConfig, language: str = "vi") -> list[Notifier]:
    out: list[Notifier] = []
    out += [WebhookNotifier(c, language) for c in cfg.webhooks]
    out += [SmtpNotifier(c) for c in cfg.email]
    out += [TelegramNotifier(c) for c in cfg.telegram]
    out += [ZaloNotifier(c) for c in cfg.zalo]
    return out
