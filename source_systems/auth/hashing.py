"""Client secrets hashed for storage, and access tokens made and digested.

A stored secret is self-describing, so the cost can be raised later without breaking old rows::

    scrypt$16384$8$1$<salt, hex>$<key, hex>

Tokens are 32 random bytes, URL-safe base64 (43 characters, all RFC 6750 `b64token`
characters); only their SHA-256 is stored, so a copy of the database holds no usable token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES, TOKEN_BYTES = 16, 32, 32


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """The storable form of `secret`, under a fresh random salt unless one is given."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` is the one `stored` was made from (constant-time comparison)."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        expected = bytes.fromhex(key)
        actual = _scrypt(secret, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(actual, expected)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class SecretCheck:
    """Checks presented secrets against stored hashes off the event loop (scrypt takes ~0.1 s).

    It remembers the pairs that matched, by a SHA-256 of both, so a caller presenting the same
    credential on every call (a gateway introspecting tokens) pays scrypt once per process. A
    hash of a correct secret only ever lives in memory, which sees the secret itself anyway.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._matched: set[str] = set()

    async def matches(self, secret: str, stored: str) -> bool:
        pair = hashlib.sha256(f"{stored}\0{secret}".encode()).hexdigest()
        if pair in self._matched:
            return True
        if not await asyncio.to_thread(verify_secret, secret, stored):
            return False
        if len(self._matched) >= self.capacity:
            self._matched.clear()
        self._matched.add(pair)
        return True
