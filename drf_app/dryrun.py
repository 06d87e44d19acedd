"""Dry runs: a request carrying either dry-run header is let through only when it is genuine.

`dry_runs` is a Django middleware, so it runs before URL resolution, the fault switch, DRF's
authentication and Django's handler404: a forged or replayed dry run is refused (403, the API's
envelope, the same bytes as legacy's) before anything that could reach a source system runs.
A genuine one is marked in the request's environ (`is_dry_run`); `ResourceView.initial` then
swaps the view's source systems for ones that sign every call anew, so the source systems roll
the writes back and the gateway answers as it would have. Requests without either header pay
one look at the header names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from drf_app.errors import DRY_RUN_REFUSED, error_response
from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, asks, verify

log = logging.getLogger("drf_app")

Handler = Callable[[HttpRequest], HttpResponseBase]
# A WSGI environ key of our own (PEP 3333: lower case, dotted, prefixed with the definer's name).
DRY_RUN = "strangler.dry_run"


def request_target(meta: Mapping[str, Any]) -> str:
    """The request target as the client sent it: gunicorn's `RAW_URI`, else `PATH_INFO` and
    `QUERY_STRING`.

    >>> request_target({"RAW_URI": "/bookings/?page=2", "PATH_INFO": "/bookings/"})
    '/bookings/?page=2'
    >>> request_target({"PATH_INFO": "/bookings", "QUERY_STRING": "page=2"})
    '/bookings?page=2'
    """
    raw = meta.get("RAW_URI")
    if raw:
        return str(raw)
    path, query = meta.get("PATH_INFO") or "/", meta.get("QUERY_STRING") or ""
    return f"{path}?{query}" if query else str(path)


def is_dry_run(request: HttpRequest) -> bool:
    """Whether `dry_runs` verified this request's dry-run headers (a DRF Request works too)."""
    return request.META.get(DRY_RUN) is True


def dry_runs(get_response: Handler) -> Handler:
    secret: str | None = settings.SHADOW_SECRET

    def middleware(request: HttpRequest) -> HttpResponseBase:
        if asks(request.headers):
            reason = verify(
                secret,
                request.headers.get(SHADOW_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                request.method or "",
                request_target(request.META),
                request.body,
                time.time(),
            )
            if reason is not None:
                log.warning("refused dry run %s %s: %s", request.method, request.path, reason)
                return error_response(request, 403, DRY_RUN_REFUSED)
            request.META[DRY_RUN] = True
        return get_response(request)

    return middleware
