"""E-mail over SMTP (stdlib ``smtplib`` in a thread, so the event loop never waits on it).

TLS as ``tls`` says: STARTTLS (587), implicit TLS (465, "SMTPS") or none. The server's
certificate and host name are always verified, against the system's CAs or ``ca_file``
(smtplib's own default context for STARTTLS verifies nothing).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
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
        self.tls = cfg.tls_mode
        cafile = str(cfg.ca_file) if cfg.ca_file is not None else None
        self._context = ssl.create_default_context(cafile=cafile) if self.tls != "none" else None

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

    def _connect(self) -> smtplib.SMTP:
        host, port, timeout = self.cfg.host, self.cfg.port, self.cfg.retry.timeout_s
        if self.tls == "implicit":
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._context)
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        if self.tls == "starttls":
            try:
                smtp.starttls(context=self._context)
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _send_sync(self, mail: MIMEText) -> None:
        where = f"{self.cfg.host}:{self.cfg.port} (tls: {self.tls})"
        try:
            with self._connect() as smtp:
                if self.cfg.username:
                    smtp.login(self.cfg.username, self.cfg.password_value())
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(f"SMTP login refused: {exc.smtp_code}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"every recipient refused: {sorted(exc.recipients)}", permanent=True) from None
        except smtplib.SMTPNotSupportedError:
            reason = f"{where} offers no STARTTLS: port 465 wants tls: implicit, a relay without TLS none"
            raise SendError(reason, permanent=True) from None
        except ssl.SSLCertVerificationError as exc:
            reason = f"the certificate of {where} is not trusted ({exc.verify_message}): set ca_file"
            raise SendError(reason) from None
        except ssl.SSLError as exc:
            raise SendError(f"TLS with {where} failed ({exc.reason}): is tls right for this port?") from None
        if refused:
            raise SendError(f"recipients refused: {sorted(refused)}", permanent=True)

    @property
    def audience(self) -> str:
        return ", ".join(self.cfg.recipients)

    async def send(self, notice: Notice, message: Message) -> None:
        await asyncio.to_thread(self._send_sync, self.build(notice, message))
