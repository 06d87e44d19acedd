"""Content-Length on every response (Django only sets it in CommonMiddleware, and without it
gunicorn answers chunked, unlike legacy). The other middleware checks dry runs (`dryrun`)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

Handler = Callable[[HttpRequest], HttpResponseBase]


def content_length(get_response: Handler) -> Handler:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if not response.streaming and not response.has_header("Content-Length"):
            # Not streaming means an HttpResponse, which has `content` (HttpResponseBase does not).
            response.headers["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
        return response

    return middleware
