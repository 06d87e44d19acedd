"""Content negotiation: JSON first, XML when asked, never a 406 (legacy's rules, to the byte).

A request asks for XML with `?format=xml` (`?format=json` asks for JSON; the parameter beats
`Accept`) or with an `Accept` header that rates `application/xml` or `text/xml` above
`application/json`; anything else gets JSON, an `Accept` the API cannot serve included. An
unknown `?format=` is a 404, raised by the view after the key check (`unknown_format`), so
negotiation itself never fails. An answer whose format `Accept` chose says `Vary: Accept`
(`accept_decides`; RFC 9110 section 12.5.5), added to any Vary it already has: by
`ResourceView.default_response_headers` in views, by `errors.error_response` elsewhere.
A body is XML when its Content-Type is `application/xml` or `text/xml`, else it is read as
JSON, whatever its Content-Type says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from django.http import QueryDict
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.settings import api_settings

if TYPE_CHECKING:
    from rest_framework.parsers import BaseParser
    from rest_framework.renderers import BaseRenderer

T = TypeVar("T")

JSON = "json"
XML = "xml"
FORMATS = (JSON, XML)
XML_TYPES = ("application/xml", "text/xml")
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


def parse_accept(accept: str) -> dict[str, float]:
    """Media range -> q (the highest, if a range comes twice), lower case; a range without a
    slash, or whose q is not 0 to 1 with three decimals at most, is left out.

    >>> parse_accept("Application/XML;q=0.5, */*; charset=x, text/html;q=2")
    {'application/xml': 0.5, '*/*': 1.0}
    """
    ranges: dict[str, float] = {}
    for item in accept.split(","):
        media_range, *params = (part.strip() for part in item.split(";"))
        qs = [
            value.strip()
            for name, _, value in (p.partition("=") for p in params)
            if name.strip().lower() == "q"
        ]
        q = qs[-1] if qs else "1"
        if "/" in media_range and _QVALUE.fullmatch(q):
            key = media_range.lower()
            ranges[key] = max(ranges.get(key, 0.0), float(q))
    return ranges


def quality(ranges: Mapping[str, float], media_type: str) -> float:
    """q of `media_type`: that of its most specific range (`a/b`, then `a/*`, then `*/*`)."""
    for media_range in (media_type, media_type.split("/")[0] + "/*", "*/*"):
        if media_range in ranges:
            return ranges[media_range]
    return 0.0


def preferred_format(accept: str | None) -> str:
    """`xml` when Accept rates XML above JSON; `json` otherwise (ties, no match, no header).

    >>> preferred_format("application/json, application/xml"), preferred_format("text/xml")
    ('json', 'xml')
    """
    ranges = parse_accept(accept or "")
    xml = max(quality(ranges, media_type) for media_type in XML_TYPES)
    return XML if xml > quality(ranges, "application/json") else JSON


def format_param(query: QueryDict) -> str:
    """The first `?format=` value ("" when absent), as Flask reads repeated parameters."""
    values = query.getlist(api_settings.URL_FORMAT_OVERRIDE or "format")
    return values[0] if values else ""


def unknown_format(requested: str) -> bool:
    return requested != "" and requested not in FORMATS


def response_format(requested: str, accept: str | None) -> str:
    """`?format=`'s format when it names one, else Accept's preference."""
    return requested if requested in FORMATS else preferred_format(accept)


def accept_decides(requested: str) -> bool:
    """Whether `Accept` chose the format of an answer: `?format=` names none (absent, empty or
    unknown), so the answer varies on Accept."""
    return requested not in FORMATS


def is_xml(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is XML (parameters and case aside)."""
    return (content_type or "").split(";")[0].strip().lower() in XML_TYPES


class JSONFirst(BaseContentNegotiation):
    """The first parser and renderer (JSON), unless the body is XML (then the parser of an XML
    media type) or the request asks for XML (then the renderer whose `format` is `xml`)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser:
        if is_xml(request.content_type):
            return next(parser for parser in parsers if parser.media_type in XML_TYPES)
        return _first(parsers)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        chosen = response_format(format_param(request.query_params), request.headers.get("Accept"))
        if chosen == XML:
            renderer = next(renderer for renderer in renderers if renderer.format == XML)
        else:
            renderer = _first(renderers)
        return renderer, renderer.media_type


def _first(items: Iterable[T]) -> T:
    """`items[0]`: DRF passes a list or tuple (its stubs say Iterable); IndexError when empty."""
    return items[0] if isinstance(items, Sequence) else list(items)[0]
