"""The one place where a foreign exception (OSError, ssl.SSLError, TimeoutError, an httptools
parser error) met on a backend connection becomes a `ProxyError`, that is a 502 or a 504: the
connection calls `translated` for what happens while it is open, the pool `translate_errors`
around the connect and TLS handshake. The error classes themselves are in `proxy.errors`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httptools

from proxy.errors import (
    ProxyError,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamProtocolError,
    UpstreamReadTimeout,
    UpstreamReset,
    UpstreamTlsError,
)


def translated(exc: Exception, *, connecting: bool = False) -> ProxyError:
    """The one place where a foreign exception becomes the proxy's 502/504 error.

    Anything that is not a timeout, a parser error or an OSError is not ours to hide: re-raised.
    """
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamConnectTimeout() if connecting else UpstreamReadTimeout()
    if isinstance(exc, httptools.HttpParserError):
        context = exc.__context__
        return context if isinstance(context, ProxyError) else UpstreamProtocolError()
    if isinstance(exc, ssl.SSLError):  # an OSError too: tested first
        return UpstreamTlsError()
    if isinstance(exc, OSError):
        return UpstreamConnectError() if connecting else UpstreamReset()
    raise exc


@contextmanager
def translate_errors(*, connecting: bool = False) -> Iterator[None]:
    """`translated` as a context manager: foreign exceptions leave it as `ProxyError`s."""
    try:
        yield
    except ProxyError:
        raise
    except Exception as exc:
        raise translated(exc, connecting=connecting) from exc
