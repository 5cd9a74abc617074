"""A board's provisioning bundle as a ZIP the technician downloads once.

The bundle is what ``commune-iot provision`` writes for a board (``commune_iot.provision.
bundle``: edge.yaml, the MQTT password, the CA, the systemd unit, the update launcher,
INSTALL.sh), plus the board's collector when the technician gave the camera's URL or the
AP's address (checked with the agent's own models, ``cloud.fleet.schema``), and that
collector's secret (camera password, SNMP community) as a file only the agent reads.

The password must not stay in the cloud in clear. The ZIP is sealed (AES-256-GCM) under a
random key that exists only in the download link handed to the technician who added the
board; SQL keeps the ciphertext under the key's SHA-256. The first download opens it and
deletes it; a bundle nobody fetched within ``broker_admin.bundle_ttl_s`` is deleted too.
Either way only a new bundle (with a new password) can be had afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.fleet import schema
from commune_iot.provision import bundle

ETC = bundle.ETC
#: A ZIP entry's date: fixed, so the same files make the same bytes.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class BundleError(ValueError):
    """The collector the technician described is not one the agent would accept."""


@dataclass(frozen=True, slots=True)
class Collector:
    """What the technician told about the device, for its edge.yaml."""

    kind: str  # camera | ap
    device: str
    camera_url: str = ""
    camera_password: str = ""
    ap_host: str = ""
    ap_profile: str = "auto"
    snmp_community: str = ""


def public_camera_url(url: str) -> tuple[str, str, str]:
    """(the URL without credentials, its user name, its password): the inventory keeps the
    first, the bundle the others (the password as a file)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise BundleError(f"camera URL {url!r}: expected rtsp://HOST[:PORT]/PATH")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return clean, unquote(parts.username or ""), unquote(parts.password or "")


def collector_config(c: Collector) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(the ``collectors`` of the board's edge.yaml, secret files by name); nothing when the
    technician gave no camera URL or AP address (INSTALL.sh then says to add one)."""
    files: dict[str, str] = {}
    spec: dict[str, Any]
    if c.kind == "camera" and c.camera_url:
        url, user, password = public_camera_url(c.camera_url)
        password = c.camera_password or password
        spec = {"type": "camera", "device": c.device, "url": url, "interval_s": bundle.COLLECTOR_INTERVAL_S}
        if user:
            spec["username"] = user
        if password:
            files["camera.password"] = password
            spec["password_file"] = f"{ETC}/camera.password"
    elif c.kind == "ap" and c.ap_host:
        if not c.snmp_community:
            raise BundleError("an access point needs its SNMP community (v2c) for the bundle")
        files["snmp-community"] = c.snmp_community
        spec = {
            "type": "snmp_ap",
            "interval_s": bundle.COLLECTOR_INTERVAL_S,
            "check_interval_s": bundle.AP_CHECK_INTERVAL_S,
            "snmp": {"version": "2c", "community_file": f"{ETC}/snmp-community"},
            "profile": c.ap_profile or "auto",
            "aps": [{"device": c.device, "host": c.ap_host}],
        }
    else:
        return [], {}
    try:
        schema.check({"collectors": [spec]})
    except schema.ConfigRejected as exc:
        raise BundleError(str(exc)) from None
    return [spec], files


def make_zip(folder: str, contents: dict[str, tuple[bytes, int]]) -> bytes:
    """``contents`` (name -> bytes, mode) in ``folder/`` of a ZIP, modes kept for unzip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, (body, mode) in sorted(contents.items()):
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=_ZIP_DATE)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, body)
    return buf.getvalue()


def bundle_id(token: str) -> str:
    """What SQL keys a bundle by: the token's SHA-256 (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def seal(data: bytes) -> tuple[str, str]:
    """(the download token, the sealed data as stored): AES-256-GCM under the token's key."""
    key = AESGCM.generate_key(bit_length=256)
    token = base64.urlsafe_b64encode(key).rstrip(b"=").decode()
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, data, bundle_id(token).encode())
    return token, base64.b64encode(sealed).decode()


def unseal(token: str, sealed: str) -> bytes | None:
    """The data, or None when the token does not open it."""
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        raw = base64.b64decode(sealed)
        return AESGCM(key).decrypt(raw[:12], raw[12:], bundle_id(token).encode())
    except (ValueError, InvalidTag):
        return None
