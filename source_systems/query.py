"""List queries: the query string of `GET /<collection>` parsed once, then turned into SQL."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000

_DIGITS = re.compile(r"\d+")
_INT = re.compile(r"-?\d+")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ListQuery:
    """A parsed list request: window, optional id restriction, exact-match filters."""

    offset: int = 0
    limit: int = DEFAULT_LIMIT
    ids: tuple[int, ...] | None = None
    filters: tuple[tuple[str, str], ...] = ()


def _bounded_int(name: str, text: str, upper: int | None) -> int:
    if not _DIGITS.fullmatch(text) or (upper is not None and int(text) > upper):
        bound = f"between 0 and {upper}" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be an integer {bound}")
    return int(text)


def _parse_ids(text: str) -> tuple[int, ...]:
    if text == "":
        return ()
    parts = text.split(",")
    if not all(_DIGITS.fullmatch(part) for part in parts):
        raise ValueError("ids must be a comma separated list of integers")
    return tuple(int(part) for part in parts)


def parse_list_query(params: Iterable[tuple[str, str]]) -> ListQuery:
    """Parse query parameters; raise ValueError with a client-facing message when bad.

    >>> parse_list_query([("limit", "5"), ("ids", "3,1"), ("tour_id", "7")])
    ListQuery(offset=0, limit=5, ids=(3, 1), filters=(('tour_id', '7'),))
    """
    offset, limit, ids = 0, DEFAULT_LIMIT, None
    filters: list[tuple[str, str]] = []
    for key, value in params:
        if key == "offset":
            offset = _bounded_int("offset", value, None)
        elif key == "limit":
            limit = _bounded_int("limit", value, MAX_LIMIT)
        elif key == "ids":
            ids = _parse_ids(value)
        elif _FIELD.fullmatch(key):
            filters.append((key, value))
        else:
            raise ValueError(f"bad filter field: {key!r}")
    return ListQuery(offset, limit, ids, tuple(filters))


def field_expression(field: str) -> str:
    """The SQL expression of a top-level field; `field` must be a plain identifier.

    The path is a literal (not a bound parameter) so that expression indexes apply.
    """
    if not _FIELD.fullmatch(field):
        raise ValueError(f"bad field name: {field!r}")
    return f"json_extract(data, '$.{field}')"


def where_clause(query: ListQuery) -> tuple[str, list[object]]:
    """SQL `WHERE ...` (or "") and its parameters for the query's ids and filters.

    A value that reads as an integer matches a stored integer or the same stored string:
    `tour_id=3` -> `json_extract(data, '$.tour_id') IN (?, ?)` with `[3, "3"]`.
    """
    terms: list[str] = []
    params: list[object] = []
    if query.ids is not None:
        terms.append(f"id IN ({', '.join('?' * len(query.ids))})" if query.ids else "0")
        params.extend(query.ids)
    for field, value in query.filters:
        if _INT.fullmatch(value):
            terms.append(f"{field_expression(field)} IN (?, ?)")
            params.extend((int(value), value))
        else:
            terms.append(f"{field_expression(field)} = ?")
            params.append(value)
    return (f" WHERE {' AND '.join(terms)}" if terms else ""), params
