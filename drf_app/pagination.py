"""Page requests and list envelopes: `?page=2&max_per_page=20` in, `{count, ..., links}` out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rest_framework.exceptions import ValidationError

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
_INVALID = "A valid integer is required."


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    max_per_page: int = DEFAULT_PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.max_per_page


def _positive(query: Mapping[str, str], name: str, default: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


def parse_page_request(query: Mapping[str, str]) -> PageRequest:
    """`{"page": "2", "max_per_page": "500"}` -> PageRequest(2, 100); `{"page": "x"}` ->
    ValidationError({"page": ["A valid integer is required."]})."""
    page = _positive(query, "page", 1)
    per_page = _positive(query, "max_per_page", DEFAULT_PER_PAGE)
    errors = {
        name: [_INVALID]
        for name, value in (("page", page), ("max_per_page", per_page))
        if value is None
    }
    if errors or page is None or per_page is None:
        raise ValidationError(errors)
    return PageRequest(page, min(per_page, MAX_PER_PAGE))


def page_links(url: str, request: PageRequest, count: int) -> list[dict[str, str]]:
    """`previous` and `next` links of a page, `url` being `<base><path>` without query."""
    links = []
    if request.page > 1:
        links.append(("previous", request.page - 1))
    if request.page * request.max_per_page < count:
        links.append(("next", request.page + 1))
    return [
        {"rel": rel, "href": f"{url}?page={page}&max_per_page={request.max_per_page}"}
        for rel, page in links
    ]


def page_envelope(
    url: str, request: PageRequest, count: int, results: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "count": count,
        "current_page": request.page,
        "max_per_page": request.max_per_page,
        "results": results,
        "links": page_links(url, request, count),
    }
