"""Building API objects from source records: pure functions of the records and the base URL.

>>> base = "http://api.test"
>>> build_object("bookings", 7, [{"id": 7, "customer_id": 3, "contact_email": "a@x"},
...               {"id": 7, "contact_email": "b@x"}], {"customer_id": "customers"}, base)
... # doctest: +NORMALIZE_WHITESPACE
{'id': 7, 'contact_email': 'b@x', 'customer': {'id': 3, 'href': 'http://api.test/customers/3'},
 'href': 'http://api.test/bookings/7'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Record = dict[str, Any]


def merge_records(records: Iterable[Mapping[str, Any] | None]) -> Record:
    """Fields of every record in order, a later record winning on collision; None adds nothing."""
    merged: Record = {}
    for record in records:
        if record is not None:
            merged.update(record)
    return merged


def link(base: str, resource: str, pk: Any) -> dict[str, Any] | None:
    if pk is None:
        return None
    return {"id": pk, "href": f"{base}/{resource}/{pk}"}


def expand_links(obj: Record, links: Mapping[str, str], base: str) -> Record:
    """Replace each `X_id` field named in `links` by `X: {"id", "href"}` (or `X: null`)."""
    for field, resource in links.items():
        if field in obj:
            obj[field.removesuffix("_id")] = link(base, resource, obj.pop(field))
    return obj


def expand_variations(obj: Record, resource: str, pk: int, base: str) -> Record:
    """Replace `variation_ids` by `variations: [{"id", "href"}, ...]` under the object's URL."""
    if "variation_ids" in obj:
        ids = obj.pop("variation_ids") or []
        obj["variations"] = [{"id": vid, "href": f"{base}/{resource}/{pk}/{vid}"} for vid in ids]
    return obj


def build_object(
    resource: str,
    pk: int,
    records: Iterable[Mapping[str, Any] | None],
    links: Mapping[str, str],
    base: str,
    *,
    variations: bool = False,
) -> Record:
    """The API object for `resource/pk` from its source records, in declared source order."""
    obj = expand_links(merge_records(records), links, base)
    if variations:
        expand_variations(obj, resource, pk, base)
    obj["id"] = pk
    obj["href"] = f"{base}/{resource}/{pk}"
    return obj


def build_variation(
    resource: str, pk: int, vid: int, record: Mapping[str, Any], parent_field: str, base: str
) -> Record:
    """A variation object: its record with the parent id replaced by a link to the parent."""
    obj = dict(record)
    obj.pop(parent_field, None)
    obj[parent_field.removesuffix("_id")] = link(base, resource, pk)
    obj["id"] = vid
    obj["href"] = f"{base}/{resource}/{pk}/{vid}"
    return obj


def base_url(meta: Mapping[str, Any], scheme: str | None) -> str:
    """`<scheme>://<host>` for links, honouring X-Forwarded-Proto and X-Forwarded-Host."""
    scheme = meta.get("HTTP_X_FORWARDED_PROTO") or scheme
    host = meta.get("HTTP_X_FORWARDED_HOST") or meta.get("HTTP_HOST", "")
    return f"{scheme}://{host}"
