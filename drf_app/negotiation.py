"""Content negotiation without negotiating: the API speaks JSON only, in and out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request


class JSONOnly(BaseContentNegotiation):
    """Always the first parser and renderer (JSON): a body is JSON whatever its declared type,
    and an `Accept` header never turns a response into a 406 (legacy ignores it too)."""

    def select_parser(self, request: Request, parsers: Sequence[Any]) -> Any:
        return parsers[0]

    def select_renderer(
        self, request: Request, renderers: Sequence[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type
