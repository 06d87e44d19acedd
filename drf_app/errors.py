"""Every error in one envelope: `{"http_status_code", "message", "errors": [{field, message}]}`.

`exception_handler` translates DRF exceptions; `not_found`, `bad_request` and `server_error`
are Django's handler404/400/500, for requests no DRF view handled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from drf_app.auth import has_valid_key

AUTH_MESSAGE = "Missing or invalid X-Application-Key."
INVALID_BODY = "Invalid JSON body."
INVALID_DATA = "Invalid data."
NOT_FOUND = "Not found."
SERVER_ERROR = "Internal server error."


class InvalidBody(exceptions.ParseError):
    default_detail = INVALID_BODY


def envelope(status: int, message: str, errors: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    return {"http_status_code": status, "message": message, "errors": list(errors)}


def field_errors(detail: Any) -> list[dict[str, str]]:
    """`{"travellers": ["Ensure ..."], ...}` -> `[{"field": "travellers", "message": "Ensure ..."}]`
    (first message of each field, in field order)."""
    if not isinstance(detail, Mapping):
        return []
    errors = []
    for field, messages in detail.items():
        first = messages[0] if isinstance(messages, list) and messages else messages
        errors.append({"field": str(field), "message": str(first)})
    return errors


def describe(exc: exceptions.APIException) -> tuple[int, str, list[dict[str, str]]]:
    """Status, message and field errors of the envelope for a DRF exception."""
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, AUTH_MESSAGE, []
    if isinstance(exc, exceptions.ParseError):
        return 400, INVALID_BODY, []
    if isinstance(exc, exceptions.ValidationError):
        return 400, INVALID_DATA, field_errors(exc.detail)
    return exc.status_code, str(exc.detail), []


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if not isinstance(exc, exceptions.APIException):
        return None
    status, message, errors = describe(exc)
    return Response(envelope(status, message, errors), status=status)


def _json(status: int, message: str) -> JsonResponse:
    return JsonResponse(envelope(status, message), status=status)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404: unknown URLs are still behind the key check (401 before 404)."""
    if not has_valid_key(request.META):
        return _json(401, AUTH_MESSAGE)
    return _json(404, NOT_FOUND)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json(400, INVALID_BODY)


def server_error(request: HttpRequest) -> JsonResponse:
    return _json(500, SERVER_ERROR)
