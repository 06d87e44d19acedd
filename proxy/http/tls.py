"""TLS to https backends: the `ssl.SSLContext` of each distinct `TlsOptions`, built once and
rebuilt only when one of its files has changed. Nothing TLS-specific happens per request: a pool
of an https backend asks `TlsContexts.get` for the context at each new connection.
"""

from __future__ import annotations

import os
import ssl

from proxy.routing.model import TlsOptions


class TlsContexts:
    """One `ssl.SSLContext` per distinct `TlsOptions`, built at the first connection needing it
    and again only when one of its files has changed (a renewed certificate): a new connection
    costs a `stat` per file, never a rebuild."""

    def __init__(self) -> None:
        self._built: dict[TlsOptions, tuple[tuple[int, ...], ssl.SSLContext]] = {}

    def get(self, options: TlsOptions | None) -> ssl.SSLContext | None:
        """None (plain HTTP) for None. Raises OSError when a file can no longer be loaded."""
        if options is None:
            return None
        stamp = file_stamp(options)
        built = self._built.get(options)
        if built is None or built[0] != stamp:
            built = self._built[options] = (stamp, options.context())
        return built[1]


def file_stamp(options: TlsOptions) -> tuple[int, ...]:
    """Which version of its files `options` names: inode and modification time of each."""
    stamp: list[int] = []
    for path in (options.ca_file, options.client_cert, options.client_key):
        if path is not None:
            status = os.stat(path)
            stamp += (status.st_ino, status.st_mtime_ns)
    return tuple(stamp)
