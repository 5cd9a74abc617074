"""E-mail over TLS to a real local SMTP server (aiosmtpd): implicit TLS (port 465 style),
STARTTLS, and a certificate nobody vouched for. The certificates are made here, for the test only."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from alerting_helpers import inventory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from cloud.notify.base import SendError
from cloud.notify.messages import Notice, render
from cloud.notify.settings import RetryConfig, SmtpConfig
from cloud.notify.smtp import SmtpNotifier
from commune_iot.localsvc import free_port

T0 = 1_800_000_000.0
OPEN = Notice("open", 7, "node:dr-cam-01", "node", "dr-cam-01", "da-ron", "silent", "critical", T0, T0 + 18)
FAST = RetryConfig(initial_s=0.05, max_s=0.2, attempts=3, timeout_s=5.0)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("commune-iot test CA"))
        .issuer_name(_name("commune-iot test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("smtp.commune-iot.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "ca": _pem(tmp_path, "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "cert": _pem(tmp_path, "server.pem", cert.public_bytes(serialization.Encoding.PEM)),
        "key": _pem(tmp_path, "server.key", key_pem),
    }


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[bool, bytes]] = []  # (arrived over TLS, content)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        implicit = server.transport.get_extra_info("ssl_object") is not None
        self.mails.append((implicit or session.ssl is not None, envelope.content))
        return "250 OK"


def _server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    return ctx


@pytest.fixture
def implicit_tls(pki: dict[str, Path]) -> Iterator[tuple[int, _Inbox]]:
    """An SMTP server that speaks TLS from the first byte, as port 465 does."""
    inbox = _Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=_server_context(pki))
    ctl.start()
    yield ctl.port, inbox
    ctl.stop()


@pytest.fixture
def starttls(pki: dict[str, Path]) -> Iterator[tuple[int, _Inbox]]:
    """An SMTP server that refuses mail until the client upgraded with STARTTLS."""
    inbox = _Inbox()
    ctl = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=_server_context(pki),
        require_starttls=True,
    )
    ctl.start()
    yield ctl.port, inbox
    ctl.stop()


def _mailer(port: int, **tls: Any) -> SmtpNotifier:
    cfg = SmtpConfig(
        host="127.0.0.1",
        port=port,
        sender="canh-bao@commune-iot.test",
        recipients=["ky-thuat@commune-iot.test"],
        retry=FAST,
        **tls,
    )
    return SmtpNotifier(cfg)


async def test_implicit_tls_delivers_to_a_server_trusted_through_ca_file(
    implicit_tls: tuple[int, _Inbox], pki: dict[str, Path]
) -> None:
    port, inbox = implicit_tls
    mailer = _mailer(port, tls="implicit", ca_file=pki["ca"])
    await mailer.send(OPEN, render(OPEN, inventory()))
    assert len(inbox.mails) == 1
    over_tls, content = inbox.mails[0]
    assert over_tls and b"X-Ciot-Alert: 7 open" in content


async def test_starttls_checks_the_certificate_too(
    starttls: tuple[int, _Inbox], pki: dict[str, Path]
) -> None:
    port, inbox = starttls
    await _mailer(port, tls="starttls", ca_file=pki["ca"]).send(OPEN, render(OPEN, inventory()))
    assert [tls for tls, _ in inbox.mails] == [True]
    with pytest.raises(SendError, match="not trusted") as refused:  # the system CAs never signed it
        await _mailer(port, tls="starttls").send(OPEN, render(OPEN, inventory()))
    assert not refused.value.permanent and len(inbox.mails) == 1


async def test_an_untrusted_certificate_or_the_wrong_tls_mode_is_refused_with_the_fix_named(
    implicit_tls: tuple[int, _Inbox], starttls: tuple[int, _Inbox], pki: dict[str, Path]
) -> None:
    message = render(OPEN, inventory())
    with pytest.raises(SendError, match=r"not trusted.*set ca_file"):
        await _mailer(implicit_tls[0], tls="implicit").send(OPEN, message)
    with pytest.raises(SendError, match=r"TLS with .* failed .*is tls right"):  # TLS to a plain greeting
        await _mailer(starttls[0], tls="implicit", ca_file=pki["ca"]).send(OPEN, message)
    assert implicit_tls[1].mails == [] and starttls[1].mails == []


def test_tls_setting_is_validated_and_465_means_implicit() -> None:
    base: dict[str, Any] = {"host": "mail.example.vn", "sender": "a@b.vn", "recipients": ["c@d.vn"]}
    assert SmtpConfig(**base).tls_mode == "starttls"
    assert SmtpConfig(**base, port=465).tls_mode == "implicit"
    assert SmtpConfig(**base, port=465, tls="none").tls_mode == "none"
    assert SmtpConfig(**base, starttls=False).tls_mode == "none"  # the old spelling still works
    with pytest.raises(ValidationError, match="starttls"):
        SmtpConfig(**base, tls="ssl")
    with pytest.raises(ValidationError, match="give tls only"):
        SmtpConfig(**base, tls="implicit", starttls=True)
    with pytest.raises(ValidationError, match=r"ca_file /nonexistent/ca\.pem is not a file"):
        SmtpConfig(**base, ca_file="/nonexistent/ca.pem")
