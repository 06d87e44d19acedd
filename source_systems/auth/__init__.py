"""The auth system: API clients and their access tokens (OAuth 2, client credentials only).

Unlike the other source systems it holds no API data, so it is not a `System` declaration run by
the generic engine but a small service of its own (`app`, `store`), on the same footing: aiohttp,
one SQLite file, `python -m source_systems auth` on port 5104.

    POST /oauth/token       RFC 6749 §4.4, the client-credentials grant
    POST /oauth/introspect  RFC 7662, for clients holding the `introspect` scope (the gateways)
    POST /oauth/revoke      RFC 7009, a client revokes one of its own tokens
    GET  /healthz

Clients authenticate with HTTP Basic (RFC 6749 §2.3.1) or with `client_id` and `client_secret`
form fields. Secrets are stored as scrypt hashes with a salt per client; tokens are random
opaque strings stored by their SHA-256, with an expiry and a revoked flag.
"""
