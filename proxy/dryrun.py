"""Dry-run writes: the signed header that asks a backend to answer a write without storing it.

A shadowed write (`shadow: {writes: dry-run}`) reaches the shadow backend with two headers::

    X-Strangler-Shadow: dry-run
    X-Strangler-Signature: t=1764345600,v1=<hex HMAC-SHA256>

The HMAC is over the method, the request target, the SHA-256 of the body and the time `t`
(whole seconds since the epoch), one per line, under the secret every party shares
(`STRANGLER_SHADOW_SECRET`). A receiver honours the dry-run only when the signature verifies and
`t` is within `WINDOW` seconds of its own clock (either way: clocks drift); anything else that
carries either header is refused, so a client can neither forge a dry-run nor replay an old one.
The proxy strips both headers from every client request; each gateway signs its own calls to the
source systems anew, over its own method, target and body.

Pure functions, no I/O: the proxy, both gateways and the source systems use this one module.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SHADOW_HEADER = "X-Strangler-Shadow"
SIGNATURE_HEADER = "X-Strangler-Signature"
DRY_RUN = "dry-run"
SECRET_VARIABLE = "STRANGLER_SHADOW_SECRET"
WINDOW = 30  # seconds either side of the receiver's clock


def digest(secret: str, method: str, target: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of one request (the body by its SHA-256)."""
    body_sha = hashlib.sha256(body).hexdigest()
    message = f"{method.upper()}\n{target}\n{body_sha}\n{timestamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, method: str, target: str, body: bytes, now: float) -> dict[str, str]:
    """The two headers of a dry-run request sent at `now`.

    >>> sign("s", "POST", "/bookings", b"{}", 1764345600.5)[SIGNATURE_HEADER][:13]
    't=1764345600,'
    """
    timestamp = int(now)
    value = f"t={timestamp},v1={digest(secret, method, target, body, timestamp)}"
    return {SHADOW_HEADER: DRY_RUN, SIGNATURE_HEADER: value}


def asks(headers: Iterable[str]) -> bool:
    """Whether a request carries either dry-run header (`headers`: its header names)."""
    names = {SHADOW_HEADER.lower(), SIGNATURE_HEADER.lower()}
    return any(name.lower() in names for name in headers)


def verify(
    secret: str | None,
    shadow: str | None,
    signature: str | None,
    method: str,
    target: str,
    body: bytes,
    now: float,
) -> str | None:
    """None when the dry-run headers are genuine; else why not (for the log, not the client).

    `shadow` and `signature` are the two headers' values as received (None when absent).

    >>> headers = sign("s", "PUT", "/tours/1", b"x", 1000.0)
    >>> verify("s", "dry-run", headers[SIGNATURE_HEADER], "PUT", "/tours/1", b"x", 1010.0)
    >>> verify("s", "dry-run", headers[SIGNATURE_HEADER], "PUT", "/tours/1", b"x", 1031.0)
    'signature expired'
    """
    if not secret:
        return "no shadow secret configured"
    if shadow != DRY_RUN:
        return "X-Strangler-Shadow must be dry-run"
    fields = dict(part.partition("=")[::2] for part in (signature or "").split(","))
    stamp, given = fields.get("t", ""), fields.get("v1", "")
    if not stamp.isascii() or not stamp.isdigit() or not given:
        return "malformed signature"
    timestamp = int(stamp)
    if abs(now - timestamp) > WINDOW:
        return "signature expired"
    if not hmac.compare_digest(digest(secret, method, target, body, timestamp), given):
        return "bad signature"
    return None
