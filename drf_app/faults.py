"""A fault switch for tests and game days: make every URL of some resources fail on purpose.

`STRANGLER_DRF_FAULTS="bookings=500,tours=503"` (read once at start-up into `settings.FAULTS`
by `settings.parse_faults`) makes `/bookings`, `/bookings/...`, `/tours` and `/tours/...` answer
that status with the error envelope (JSON, or XML when asked for), before any key check or
source system call. Unset (the default), no URL pattern is added and the gateway pays nothing
for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, re_path

from drf_app.errors import SERVER_ERROR, error_response


def message(status: int) -> str:
    """The envelope's message: "Internal server error." for 500, else the reason phrase."""
    return SERVER_ERROR if status == 500 else f"{HTTPStatus(status).phrase}."


def fault_view(status: int) -> Callable[..., HttpResponse]:
    text = message(status)

    def view(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return error_response(request, status, text)

    return view


def fault_patterns(faults: Mapping[str, int], resources: Collection[str]) -> list[URLPattern]:
    """One URL pattern per faulty resource, matching the resource and everything under it."""
    unknown = sorted(set(faults) - set(resources))
    if unknown:
        raise ImproperlyConfigured(f"STRANGLER_DRF_FAULTS: unknown resources {unknown}")
    return [
        re_path(rf"^{re.escape(resource)}(?:/.*)?$", fault_view(status), name=f"fault-{resource}")
        for resource, status in faults.items()
    ]
