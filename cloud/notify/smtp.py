"""E-mail over SMTP (stdlib ``smtplib`` in a thread, so the event loop never waits on it)."""

from __future__ import annotations

import asyncio
import smtplib
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

from cloud.notify.base import Notifier, SendError
from cloud.notify.messages import Message, Notice
from cloud.notify.settings import SmtpConfig


class SmtpNotifier(Notifier):
    kind = "email"

    def __init__(self, cfg: SmtpConfig) -> None:
        super().__init__(cfg.name, cfg.retry)
        self.cfg = cfg

    def build(self, notice: Notice, message: Message) -> MIMEText:
        """The mail. Built the compat32 way: Python 3.11's default policy folds a long
        Vietnamese subject into encoded words with the space between words outside them,
        so every mail reader shows "khôngcòn" instead of "không còn"."""
        mail = MIMEText(message.text, "plain", "utf-8")
        mail["From"] = self.cfg.sender
        mail["To"] = ", ".join(self.cfg.recipients)
        mail["Subject"] = Header(message.title, "utf-8")  # type: ignore[assignment]  # compat32 takes a Header
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain="commune-iot")
        mail["X-Ciot-Alert"] = f"{notice.alert_id} {notice.kind}"
        return mail

    def _send_sync(self, mail: MIMEText) -> None:
        try:
            with smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.cfg.retry.timeout_s) as smtp:
                if self.cfg.starttls:
                    smtp.starttls()
                if self.cfg.username:
                    smtp.login(self.cfg.username, self.cfg.password_value())
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(f"SMTP login refused: {exc.smtp_code}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"every recipient refused: {sorted(exc.recipients)}", permanent=True) from None
        if refused:
            raise SendError(f"recipients refused: {sorted(refused)}", permanent=True)

    async def send(self, notice: Notice, message: Message) -> None:
        await asyncio.to_thread(self._send_sync, self.build(notice, message))
