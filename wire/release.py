"""Release bundles: the signed manifest a board checks before it installs anything.

A bundle is a directory (served by the cloud as ``/api/v1/releases/<version>/<file>``):

* ``manifest.json``: what the release is (version, minimum previous version, Python and
  platform tags) and every file in it with its size and SHA-256;
* ``manifest.sig``: one or more Ed25519 signatures over the exact bytes of ``manifest.json``
  by release keys that never touch the cloud server (several during a key rotation);
* the wheels the manifest lists.

The board verifies the signature against the public keys in its own configuration, then
each file against the signed size and hash, and only then touches its installation: the
cloud (or anyone on the path) can withhold a release but cannot forge one.
``cryptography`` is imported when used (as in ``wire.crypto``): the models need only pydantic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Final, Literal

from pydantic import Field, StringConstraints, ValidationError, model_validator

from wire.messages import Sha256, UtcDatetime, _Model

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
PROJECT: Final = "commune-iot"
#: Largest manifest or signature file either side reads (a release lists a few dozen wheels).
MAX_MANIFEST_BYTES: Final = 256 * 1024
KEY_PREFIX: Final = "ed25519:"

#: A PEP 440 version as we write them: ``0.2.0``, ``0.2.0rc1``, ``0.2.0+g1a2b3c4.dirty``.
VERSION_PATTERN: Final = (
    r"^[0-9]+(\.[0-9]+){0,3}((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?(\+[a-z0-9]+(\.[a-z0-9]+)*)?$"
)
ReleaseVersion = Annotated[str, StringConstraints(pattern=VERSION_PATTERN, max_length=64)]
#: A file of the bundle: one path level, nothing that could climb out of a directory.
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")]
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]

_RELEASE = re.compile(r"^([0-9]+(?:\.[0-9]+)*)")


class ReleaseError(ValueError):
    """A bundle that must not be installed or published; the text says why."""


class ManifestFile(_Model):
    name: FileName
    size: int = Field(ge=0, le=2**40)
    sha256: Sha256
    kind: Literal["project", "dependency"] = Field(
        description="project: commune-iot's own wheel; dependency: one it needs, for boards without an index."
    )


class Manifest(_Model):
    format: Literal[1] = 1
    name: Literal["commune-iot"] = PROJECT
    version: ReleaseVersion
    created: UtcDatetime
    min_previous_version: ReleaseVersion | None = Field(
        default=None, description="A board running an older release must not jump straight to this one."
    )
    requires_python: str = Field(default="", max_length=64)
    #: Wheel tags of the project wheel, e.g. ``py3-none-any``.
    tags: list[Annotated[str, StringConstraints(max_length=128)]] = Field(default_factory=list, max_length=16)
    files: list[ManifestFile] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one_project(self) -> Manifest:
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError("file names repeat")
        if names.count(MANIFEST) or names.count(SIGNATURE):
            raise ValueError("the manifest cannot list itself or its signature")
        if sum(f.kind == "project" for f in self.files) != 1:
            raise ValueError("exactly one file must be the project's wheel")
        return self

    @property
    def project_file(self) -> ManifestFile:
        return next(f for f in self.files if f.kind == "project")

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class Signature(_Model):
    key_id: KeyId
    sig: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]


class Signatures(_Model):
    format: Literal[1] = 1
    signatures: list[Signature] = Field(min_length=1, max_length=8)


# -- keys ----------------------------------------------------------------------------------


def _raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    """Base64 of the 32 raw bytes: one line for a board's ``update.trusted_keys`` (the same
    form as the cloud's command key, ``control.cloud_public_key``)."""
    return base64.b64encode(_raw(key)).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key as ``public_key_text`` writes it (an ``ed25519:`` prefix is allowed)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    body = text.strip().removeprefix(KEY_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ReleaseError(f"not an Ed25519 public key (base64 of 32 bytes): {text[:60]!r}") from None


def key_id(key: Ed25519PublicKey) -> str:
    """The key's fingerprint: first 16 hex digits of SHA-256 over its raw bytes."""
    return hashlib.sha256(_raw(key)).hexdigest()[:16]


def sign(manifest: bytes, keys: Sequence[Ed25519PrivateKey]) -> bytes:
    """``manifest.sig`` for these exact manifest bytes, one signature per key."""
    entries = [
        Signature(key_id=key_id(k.public_key()), sig=base64.b64encode(k.sign(manifest)).decode())
        for k in keys
    ]
    return Signatures(signatures=entries).model_dump_json(indent=1).encode() + b"\n"


def verify(manifest: bytes, signature: bytes, trusted: Sequence[str]) -> tuple[Manifest, str]:
    """Check the signature against the trusted keys, then parse: (manifest, key id that signed).

    The bytes are verified before any JSON is parsed, so nothing from an unsigned
    manifest is ever believed."""
    if not trusted:
        raise ReleaseError("no trusted release key is configured (update.trusted_keys)")
    if len(manifest) > MAX_MANIFEST_BYTES or len(signature) > MAX_MANIFEST_BYTES:
        raise ReleaseError("manifest or signature too large")
    from cryptography.exceptions import InvalidSignature

    keys = {key_id(k): k for k in (parse_public_key(t) for t in trusted)}
    try:
        sigs = Signatures.model_validate_json(signature)
    except ValidationError as exc:
        raise ReleaseError(f"{SIGNATURE} is not a signature file: {_first(exc)}") from None
    for entry in sigs.signatures:
        key = keys.get(entry.key_id)
        if key is None:
            continue
        try:
            key.verify(base64.b64decode(entry.sig), manifest)
        except InvalidSignature:
            raise ReleaseError(
                f"bad signature by key {entry.key_id}: the manifest was altered or not signed by that key"
            ) from None
        return parse_manifest(manifest), entry.key_id
    signers = ", ".join(s.key_id for s in sigs.signatures)
    raise ReleaseError(f"signed by {signers}, none of them a trusted key ({', '.join(sorted(keys))})")


def parse_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(data, strict=True)
    except ValidationError as exc:
        raise ReleaseError(f"{MANIFEST} is invalid: {_first(exc)}") from None


def dump_manifest(manifest: Manifest) -> bytes:
    return json.dumps(manifest.model_dump(mode="json", exclude_none=True), indent=1).encode() + b"\n"


def release_tuple(version: str) -> tuple[int, ...]:
    """The numeric release part of a version (``0.2.0+g1a2b`` -> (0, 2, 0)) for "at least" checks."""
    m = _RELEASE.match(version)
    if m is None:
        raise ReleaseError(f"not a version: {version!r}")
    parts = [int(p) for p in m.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _first(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{where}: {err['msg']}"


class UpdateArgs(_Model):
    """The arguments of the ``update`` command (cloud -> board; ``wire.control.COMMANDS``).

    ``url`` is the release's directory on the cloud (``.../api/v1/releases/<version>/``);
    the board only sends its credentials there when it is under its own configured
    ``update.server_url``. ``manifest_sha256`` pins the manifest the cloud published (the
    signature is what makes it trusted; the pin makes a mix-up of versions visible)."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]{1,500}$")]
    version: ReleaseVersion
    manifest_sha256: Sha256 | None = None
