"""Dry runs: a request carrying either dry-run header is let through only when it is genuine.

The check runs before everything else, the key check included: a forged or replayed dry run
is refused (403) before any code that could reach a source system runs, and a client without
a key learns nothing more from it than from any other request. A genuine one is marked in
``g``; ``views.sources()`` then hands out source systems that sign every call anew, so the
source systems roll the writes back and the gateway answers as it would have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, g, request

from legacy_flask.errors import error_response
from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, asks, verify

log = logging.getLogger("legacy_flask")


def request_target(environ: Mapping[str, Any]) -> str:
    """The request target as the client sent it: gunicorn's ``RAW_URI``, else ``PATH_INFO``
    and ``QUERY_STRING``.

    >>> request_target({"RAW_URI": "/bookings/?page=2", "PATH_INFO": "/bookings/"})
    '/bookings/?page=2'
    >>> request_target({"PATH_INFO": "/bookings", "QUERY_STRING": "page=2"})
    '/bookings?page=2'
    """
    raw = environ.get("RAW_URI")
    if raw:
        return str(raw)
    path, query = environ.get("PATH_INFO") or "/", environ.get("QUERY_STRING") or ""
    return f"{path}?{query}" if query else str(path)


def check_dry_run() -> Response | None:
    """before_request: 403 for a dry run whose signature does not verify; mark a genuine one."""
    if not asks(request.headers.keys()):
        return None
    reason = verify(
        current_app.config["SHADOW_SECRET"],
        request.headers.get(SHADOW_HEADER),
        request.headers.get(SIGNATURE_HEADER),
        request.method,
        request_target(request.environ),
        request.get_data(),
        time.time(),
    )
    if reason is not None:
        log.warning("refused dry run %s %s: %s", request.method, request.path, reason)
        return error_response(403)
    g.dry_run = True
    return None


def is_dry_run() -> bool:
    return g.get("dry_run", False) is True
