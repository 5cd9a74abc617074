"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile).

Hashes carry their parameters, so raising them later only needs ``needs_rehash`` at the
next successful login. Verification is constant-time inside the library.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

MIN_LENGTH = 10


class WeakPassword(ValueError):
    pass


def check_policy(password: str) -> None:
    """Long enough and not trivially repetitive; length matters more than character classes."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must have at least {MIN_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("password must not repeat one or two characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


#: Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
DUMMY_HASH = _hasher.hash("no-such-user-dummy-password")
