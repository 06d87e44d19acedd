"""What the proxy answers when it cannot forward: status, message and the API's error envelope.

Every failure of the data plane is one of the `ProxyError` subclasses below. Foreign exceptions
(OSError, TimeoutError, parser errors) become one of them in exactly one place,
`proxy.http.errors.translated`; the listener turns any `ProxyError` into a response with
`error_response`. Messages never name a backend address and never carry a traceback.
"""

from __future__ import annotations

import json
from http import HTTPStatus


class ProxyError(Exception):
    """A request the proxy answers itself. `kind` is the upstream_errors metric label, if any."""

    status: int = 502
    message: str = "Bad gateway."
    kind: str | None = None

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.message)


class BadRequest(ProxyError):
    status = 400
    message = "Bad request: the request is not valid HTTP/1.1."


class UpstreamConnectError(ProxyError):
    status = 502
    message = "Bad gateway: the backend is unreachable."
    kind = "connect"


class UpstreamReset(ProxyError):
    status = 502
    message = "Bad gateway: the backend closed the connection."
    kind = "reset"


class UpstreamTlsError(ProxyError):
    status = 502
    message = "Bad gateway: the TLS handshake with the backend failed."
    kind = "tls"


class UpstreamProtocolError(ProxyError):
    status = 502
    message = "Bad gateway: the backend did not answer with HTTP."
    kind = "protocol"


class UpstreamHeadTooLarge(ProxyError):
    status = 502
    message = "Bad gateway: the backend's response head is too large."
    kind = "protocol"


class UpstreamSendTimeout(ProxyError):
    status = 504
    message = "Gateway timeout: the backend stopped reading the request body."
    kind = "timeout"


class UpstreamConnectTimeout(ProxyError):
    status = 504
    message = "Gateway timeout: the backend did not accept the connection in time."
    kind = "timeout"


class UpstreamReadTimeout(ProxyError):
    status = 504
    message = "Gateway timeout: the backend did not answer in time."
    kind = "timeout"


class PoolFull(ProxyError):
    status = 503
    message = "Service unavailable: the backend's connection limit is reached."


class Draining(ProxyError):
    status = 503
    message = "Service unavailable: the proxy is shutting down."


class RequestHeadTimeout(ProxyError):
    status = 408
    message = "Request timeout: the request head did not arrive in time."


class RequestBodyTimeout(ProxyError):
    status = 408
    message = "Request timeout: the request body did not arrive in time."


class UnsupportedTransferCoding(ProxyError):
    status = 501
    message = "Not implemented: a request Transfer-Encoding other than chunked."


class RequestLineTooLong(ProxyError):
    status = 414
    message = "URI too long."


class HeadersTooLarge(ProxyError):
    status = 431
    message = "Request header fields too large."


class BodyTooLarge(ProxyError):
    status = 413
    message = "Payload too large."


def envelope(status: int, message: str) -> bytes:
    """The API's error body: `{"http_status_code": 502, "message": "...", "errors": []}`."""
    return json.dumps({"http_status_code": status, "message": message, "errors": []}).encode()


def error_response(error: ProxyError, *, close: bool) -> bytes:
    """A complete HTTP/1.1 response (head and body) for `error`."""
    body = envelope(error.status, error.message)
    reason = HTTPStatus(error.status).phrase
    head = (
        f"HTTP/1.1 {error.status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode("ascii") + body
