"""Cryptography of the control plane: secrets sealed for one board, commands signed by the cloud.

* **Sealed secrets.** A secret the cloud sets on a board (a camera password, an SNMP
  community) travels and is stored as ``sealed:v1:<base64>``: encrypted to that board's
  X25519 public key (an ephemeral key, HKDF-SHA256, ChaCha20-Poly1305), so only the board
  can read it. The cloud keeps only the sealed text in the twin and its history; the broker
  keeps only the sealed text in its retained message.
* **Signatures.** Commands and desired configurations may carry an Ed25519 signature over
  their canonical JSON (keys sorted, no spaces, without ``sig``). A board given the cloud's
  public key refuses anything unsigned or signed by another key, so even a broker account
  that could publish on its topics cannot command it.

``cryptography`` is imported when used: the wire models themselves need only pydantic.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

SEALED_PREFIX: Final = "sealed:v1:"
#: What a secret field shows wherever the configuration is displayed or reported (pydantic's
#: own rendering of a ``SecretStr``). Sent back in a desired configuration, it means "keep
#: what the board has at this place".
REDACTED: Final = "**********"
_INFO: Final = b"ciot-seal-v1"


class CryptoError(ValueError):
    """A key, a sealed value or a signature that cannot be used; the text says which."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CryptoError(f"{what} is not valid base64") from None


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


# ---------------------------------------------------------------------------- sealing (X25519)


def new_board_key() -> X25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.generate()


def board_key_bytes(key: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def load_board_key(raw: bytes) -> X25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    if len(raw) != 32:
        raise CryptoError("a board key is 32 bytes")
    return X25519PrivateKey.from_private_bytes(raw)


def board_public_b64(key: X25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _derive(shared: bytes, epk: bytes, board_pub: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + epk + board_pub).derive(shared)


def seal(board_public: str, secret: str) -> str:
    """``secret`` encrypted so that only the board holding the private half of ``board_public``
    (base64 X25519) can read it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    pub = _b64decode(board_public, "the board key")
    if len(pub) != 32:
        raise CryptoError("the board key is not an X25519 public key (32 bytes)")
    eph = X25519PrivateKey.generate()
    epk = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _derive(eph.exchange(X25519PublicKey.from_public_bytes(pub)), epk, pub)
    nonce = os.urandom(12)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, secret.encode(), _INFO)
    return SEALED_PREFIX + base64.b64encode(epk + nonce + sealed).decode()


def unseal(key: X25519PrivateKey, token: str) -> str:
    """The secret inside ``token``; CryptoError when it was sealed for another board or altered."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    if not is_sealed(token):
        raise CryptoError("not a sealed value")
    blob = _b64decode(token[len(SEALED_PREFIX) :], "the sealed value")
    if len(blob) < 32 + 12 + 16:
        raise CryptoError("the sealed value is truncated")
    epk, nonce, body = blob[:32], blob[32:44], blob[44:]
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    derived = _derive(key.exchange(X25519PublicKey.from_public_bytes(epk)), epk, pub)
    try:
        return ChaCha20Poly1305(derived).decrypt(nonce, body, _INFO).decode()
    except InvalidTag:
        raise CryptoError("the sealed value was sealed for another board key, or altered") from None


# ---------------------------------------------------------------------------- signing (Ed25519)


def canonical(doc: dict[str, Any]) -> bytes:
    """What is signed: the JSON document without ``sig``, keys sorted, no spaces, UTF-8."""
    body = {k: v for k, v in doc.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_signing_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def signing_key_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_signing_key(pem: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise CryptoError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CryptoError("the signing key is not an Ed25519 key")
    return key


def verify_key_b64(key: Ed25519PrivateKey) -> str:
    """The public half, base64 (32 bytes): what boards are given as ``control.cloud_public_key``."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def check_verify_key(public: str) -> str:
    """``public`` when it is an Ed25519 public key in base64 (32 bytes); CryptoError otherwise."""
    if len(_b64decode(public, "control.cloud_public_key")) != 32:
        raise CryptoError("control.cloud_public_key is not an Ed25519 public key (32 bytes)")
    return public


def sign(key: Ed25519PrivateKey, doc: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(canonical(doc))).decode()


def verify(public: str, doc: dict[str, Any]) -> None:
    """Check ``doc["sig"]`` against ``public`` (base64 Ed25519); CryptoError says what is wrong."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    sig = doc.get("sig")
    if not isinstance(sig, str) or not sig:
        raise CryptoError("unsigned, and this board accepts only messages signed by its cloud")
    raw = _b64decode(check_verify_key(public), "control.cloud_public_key")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(_b64decode(sig, "the signature"), canonical(doc))
    except InvalidSignature:
        raise CryptoError("bad signature: not signed by this board's cloud, or altered") from None
