"""Content negotiation without negotiating: the API speaks JSON only, in and out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request

if TYPE_CHECKING:
    from rest_framework.parsers import BaseParser
    from rest_framework.renderers import BaseRenderer

T = TypeVar("T")


class JSONOnly(BaseContentNegotiation):
    """Always the first parser and renderer (JSON): a body is JSON whatever its declared type,
    and an `Accept` header never turns a response into a 406 (legacy ignores it too)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser:
        return _first(parsers)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = _first(renderers)
        return renderer, renderer.media_type


def _first(items: Iterable[T]) -> T:
    """`items[0]`: DRF passes a list or tuple (its stubs say Iterable); IndexError when empty."""
    return items[0] if isinstance(items, Sequence) else list(items)[0]
