"""Every error in one envelope: `{"http_status_code", "message", "errors": [{field, message}]}`.

`exception_handler` translates DRF exceptions; `not_found`, `bad_request` and `server_error`
are Django's handler404/400/500, for requests no DRF view handled. Views render the envelope
in the negotiated format; `error_response` does the same for answers no view renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from rest_framework import exceptions
from rest_framework.response import Response

from drf_app.auth import authorize, challenge_of
from drf_app.negotiation import XML, accept_decides, format_param, is_xml, response_format
from drf_app.renderers import XMLRenderer

AUTH_MESSAGE = "Missing or invalid X-Application-Key."
DRY_RUN_REFUSED = "Invalid dry-run signature."
INVALID_BODY = "Invalid JSON body."
INVALID_XML_BODY = "Invalid XML body."
INVALID_DATA = "Invalid data."
NOT_FOUND = "Not found."
SERVER_ERROR = "Internal server error."


class InvalidBody(exceptions.ParseError):
    default_detail = INVALID_BODY


class InvalidXMLBody(InvalidBody):
    default_detail = INVALID_XML_BODY


def invalid_body(content_type: str | None) -> InvalidBody:
    """The 400 for a body that holds no object, in the words of its declared format."""
    return InvalidXMLBody() if is_xml(content_type) else InvalidBody()


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
    if isinstance(exc, InvalidBody):
        return 400, str(exc.detail), []
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
    challenge = challenge_of(exc)
    headers = None if challenge is None else {"WWW-Authenticate": challenge}
    return Response(envelope(status, message, errors), status=status, headers=headers)


def error_response(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """The envelope, in the format the request asks for, for answers no DRF view renders; with
    `Vary: Accept` when Accept chose it, as views answer."""
    body = envelope(status, message)
    requested = format_param(request.GET)
    response: HttpResponse
    if response_format(requested, request.headers.get("Accept")) == XML:
        content_type = f"{XMLRenderer.media_type}; charset={XMLRenderer.charset}"
        response = HttpResponse(
            XMLRenderer().render(body), status=status, content_type=content_type
        )
    else:
        response = JsonResponse(body, status=status)
    if accept_decides(requested):
        patch_vary_headers(response, ["Accept"])
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: unknown URLs are still behind authentication (400/401/403/502 before 404)."""
    try:
        authorize(request.META, request.method or "")
    except exceptions.APIException as exc:
        status, message, _ = describe(exc)
        response = error_response(request, status, message)
        challenge = challenge_of(exc)
        if challenge is not None:
            response["WWW-Authenticate"] = challenge
        return response
    return error_response(request, 404, NOT_FOUND)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 400, INVALID_BODY)


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(request, 500, SERVER_ERROR)
