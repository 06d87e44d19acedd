"""The error envelope and the handlers that turn every failure into it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from legacy_flask import formats
from legacy_flask.sources import SourceUnavailable
from legacy_flask.urls import resolve, wsgi_path

log = logging.getLogger("legacy_flask")

MESSAGES = {
    400: "Invalid data.",
    401: "Missing or invalid X-Application-Key.",
    403: "Invalid dry-run signature.",
    404: "Not found.",
    500: "Internal server error.",
    502: "A source system is unavailable.",
}


def api_response(data: object, status: int = 200) -> Response:
    """`data` in the format the request asks for: JSON, or XML (``legacy_flask.formats``); with
    ``Vary: Accept`` when Accept chose it (added to the set, so a later ``vary.add`` merges)."""
    format_param = request.args.get("format")
    chosen = formats.response_format(format_param, request.headers.get("Accept"))
    if chosen == formats.XML:
        response = Response(
            formats.to_xml(data), status=status, content_type=formats.XML_CONTENT_TYPE
        )
    else:
        response = Response(json.dumps(data), status=status, mimetype="application/json")
    if formats.accept_decides(format_param):
        response.vary.add("Accept")
    return response


def error_response(
    status: int, message: str | None = None, errors: Sequence[dict[str, str]] = ()
) -> Response:
    body = {
        "http_status_code": status,
        "message": message or MESSAGES.get(status, "Error."),
        "errors": list(errors),
    }
    return api_response(body, status)


def method_not_allowed(method: str, allowed: Sequence[str] = ()) -> Response:
    response = error_response(405, f'Method "{method}" not allowed.')
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 405:
        return unrouted_method(request.method, wsgi_path(request.environ))
    return error_response(status, MESSAGES.get(status) or exc.name + ".")


def unrouted_method(method: str, path: str) -> Response:
    """A method no route takes (``TRACE``, ``FOO``): 405 on a known URL, 404 elsewhere."""
    route = resolve(method, path)
    if route is None:
        return error_response(404)
    return method_not_allowed(method, route.allowed)


def handle_source_unavailable(exc: SourceUnavailable) -> Response:
    log.warning("source unavailable: %s", exc)
    return error_response(502)


def handle_unexpected(exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(SourceUnavailable, handle_source_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
