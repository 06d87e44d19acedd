"""Building API objects from source records: pure functions of the records and the base URL.

>>> base = "http://api.test"
>>> build_object("bookings", 7, [{"id": 7, "customer_id": 3, "contact_email": "a@x"},
...               {"id": 7, "contact_email": "b@x"}], {"customer_id": "customers"}, base)
... # doctest: +NORMALIZE_WHITESPACE
{'id': 7, 'contact_email': 'b@x', 'customer': {'id': 3, 'href': 'http://api.test/customers/3'},
 'href': 'http://api.test/bookings/7'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Reference:
    """A field holding a code of `resource` (a nationality's "CA"), shown as the G API's stub
    `{"id", "href", "name"}` with the name from `names`."""

    resource: str
    names: Mapping[str, str]


NO_REFERENCES: Mapping[str, Reference] = MappingProxyType({})


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


def expand_references(obj: Record, references: Mapping[str, Reference], base: str) -> Record:
    """Replace each code named in `references` by its stub, in place: `"CA"` ->
    `{"id": "CA", "href": "<base>/nationalities/CA", "name": "Canadian"}`."""
    for field, reference in references.items():
        code = obj.get(field)
        if code is not None:
            href = f"{base}/{reference.resource}/{code}"
            obj[field] = {"id": code, "href": href, "name": reference.names.get(code)}
    return obj


def expand_variations(obj: Record, resource: str, pk: int, base: str) -> Record:
    """Replace `variation_ids` by gapipy's variation stubs under the object's URL:
    `[{"id": pk, "href": "<base>/<resource>/<pk>/<vid>", "variation_id": vid}, ...]`."""
    if "variation_ids" in obj:
        ids = obj.pop("variation_ids") or []
        obj["variations"] = [
            {"id": pk, "href": f"{base}/{resource}/{pk}/{vid}", "variation_id": vid} for vid in ids
        ]
    return obj


def link_nested(obj: Record, url: str, nested: Sequence[str]) -> Record:
    """Add `<child>: {"href": "<url>/<child>"}` for each list nested under the object's URL."""
    for child in nested:
        obj[child] = {"href": f"{url}/{child}"}
    return obj


def build_object(
    resource: str,
    pk: int,
    records: Iterable[Mapping[str, Any] | None],
    links: Mapping[str, str],
    base: str,
    *,
    variations: bool = False,
    references: Mapping[str, Reference] = NO_REFERENCES,
    nested: Sequence[str] = (),
) -> Record:
    """The API object for `resource/pk` from its source records, in declared source order."""
    obj = expand_references(expand_links(merge_records(records), links, base), references, base)
    if variations:
        expand_variations(obj, resource, pk, base)
    obj["id"] = pk
    url = f"{base}/{resource}/{pk}"
    link_nested(obj, url, nested)
    obj["href"] = url
    return obj


def build_variation(
    resource: str,
    pk: int,
    vid: int,
    record: Mapping[str, Any],
    parent_field: str,
    base: str,
    nested: Sequence[str] = (),
) -> Record:
    """A variation as the G API shows one: `id` the parent's, `variation_id` the variation's,
    then the record's other fields and a link to the parent."""
    obj: Record = {"id": pk, "variation_id": vid}
    obj.update((key, value) for key, value in record.items() if key not in ("id", parent_field))
    obj[parent_field.removesuffix("_id")] = link(base, resource, pk)
    url = f"{base}/{resource}/{pk}/{vid}"
    link_nested(obj, url, nested)
    obj["href"] = url
    return obj


def base_url(meta: Mapping[str, Any], scheme: str | None) -> str:
    """`<scheme>://<host>` for links, honouring X-Forwarded-Proto and X-Forwarded-Host."""
    scheme = meta.get("HTTP_X_FORWARDED_PROTO") or scheme
    host = meta.get("HTTP_X_FORWARDED_HOST") or meta.get("HTTP_HOST", "")
    return f"{scheme}://{host}"
