"""Pure functions that turn source records into API objects, lists and links."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from legacy_flask.resources import RESOURCES

Record = dict[str, Any]


def base_url(
    scheme: str, host: str, forwarded_proto: str | None, forwarded_host: str | None
) -> str:
    """``<scheme>://<host>`` as clients see it, preferring the X-Forwarded-* values.

    >>> base_url("http", "127.0.0.1:5000", "https", None)
    'https://127.0.0.1:5000'
    """
    return f"{forwarded_proto or scheme}://{forwarded_host or host}"


def link(base: str, resource: str, value: Any) -> Record | None:
    if value is None:
        return None
    return {"id": value, "href": f"{base}/{resource}/{value}"}


def merge(records: Iterable[Mapping[str, Any] | None]) -> Record:
    """Fold the records of one id, first source first; later sources win on collisions."""
    merged: Record = {}
    for record in records:
        if record:
            merged.update(record)
    return merged


def replace_links(obj: Record, links: Mapping[str, str], base: str) -> None:
    for field, target in links.items():
        if field in obj:
            obj[field[: -len("_id")]] = link(base, target, obj.pop(field))


def replace_references(obj: Record, references: Mapping[str, Any], base: str) -> None:
    """Stored codes become reference objects, in place: ``"CA"`` ->
    ``{"id": "CA", "href": base + "/nationalities/CA", "name": "Canadian"}``."""
    for field, (target, names) in references.items():
        code = obj.get(field)
        if code is not None:
            obj[field] = {"id": code, "href": f"{base}/{target}/{code}", "name": names.get(code)}


def build_object(resource: str, merged: Record, base: str) -> Record:
    """The API object of `resource` from its merged source record (a new dict)."""
    definition = RESOURCES[resource]
    obj = dict(merged)
    object_id = obj["id"]
    replace_links(obj, definition["links"], base)
    replace_references(obj, definition["references"], base)
    variations = definition["variations"]
    if variations is not None and variations["ids_field"] in obj:
        # gapipy's variation stub: the itinerary's id, the variation as `variation_id`.
        obj["variations"] = [
            {"id": object_id, "href": f"{base}/{resource}/{object_id}/{vid}", "variation_id": vid}
            for vid in obj.pop(variations["ids_field"]) or []
        ]
    for child in definition["nested"]:
        obj[child] = {"href": f"{base}/{resource}/{object_id}/{child}"}
    obj["href"] = f"{base}/{resource}/{object_id}"
    return obj


def build_variation(resource: str, parent_id: int, record: Record, base: str) -> Record:
    """A variation object, as the G API shows one: the parent's id, the variation's id as
    ``variation_id``, the record's other fields, the parent as a link object."""
    definition = RESOURCES[resource]
    variations = definition["variations"]
    skipped = ("id", variations["parent_field"])
    obj = {"id": parent_id, "variation_id": record["id"]}
    obj.update((key, value) for key, value in record.items() if key not in skipped)
    obj[variations["parent_link"]] = link(base, resource, parent_id)
    url = f"{base}/{resource}/{parent_id}/{record['id']}"
    for child, rule in definition["nested"].items():
        if "variation_filter" in rule:
            obj[child] = {"href": f"{url}/{child}"}
    obj["href"] = url
    return obj


def page_links(url: str, page: int, per_page: int, count: int) -> list[dict[str, str]]:
    """The ``previous``/``next`` links of one list page; `url` is base + path, no query.

    >>> page_links("http://h/tours", 2, 20, 50)[1]
    {'rel': 'next', 'href': 'http://h/tours?page=3&max_per_page=20'}
    """
    links = []
    if page > 1:
        links.append({"rel": "previous", "href": f"{url}?page={page - 1}&max_per_page={per_page}"})
    if page * per_page < count:
        links.append({"rel": "next", "href": f"{url}?page={page + 1}&max_per_page={per_page}"})
    return links


def list_envelope(results: list[Record], count: int, page: int, per_page: int, url: str) -> Record:
    return {
        "count": count,
        "current_page": page,
        "max_per_page": per_page,
        "results": results,
        "links": page_links(url, page, per_page, count),
    }
