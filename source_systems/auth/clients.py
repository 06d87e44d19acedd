"""The API clients the auth system is seeded with, and the scopes they can hold.

`read` lets a token make GET, HEAD and OPTIONS requests at the gateways, `write` everything
else; `introspect` lets a client ask about tokens (the gateways' own credential).
"""

from __future__ import annotations

from dataclasses import dataclass

READ, WRITE, INTROSPECT = "read", "write", "introspect"


@dataclass(frozen=True)
class ClientSeed:
    """A client as seeded: its id, its secret in clear (hashed before it is stored), its scopes."""

    client_id: str
    secret: str
    scopes: tuple[str, ...]


DEMO_CLIENTS = (
    ClientSeed("demo-client", "demo-secret", (READ, WRITE)),
    ClientSeed("demo-reader", "demo-reader-secret", (READ,)),
    # The gateways' credential at /oauth/introspect (their AUTH_CLIENT_ID / AUTH_CLIENT_SECRET).
    ClientSeed("gateway", "gateway-secret", (INTROSPECT,)),
)
