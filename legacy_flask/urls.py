"""The URL shapes of the API, matched by hand the way the original gateway did.

``resolve(method, path)`` is pure: it names the handler and its arguments, or returns None
for a 404. Method checks (405) are left to the caller through ``Route.allowed``.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from legacy_flask.resources import RESOURCES, is_writable

_ID = re.compile(r"[0-9]+\Z")
READ = ("GET", "HEAD", "OPTIONS")
WRITE_COLLECTION = (*READ, "POST")
WRITE_OBJECT = (*READ, "PUT", "PATCH")


class Route(NamedTuple):
    kind: str  # collection, object, nested, variation, variation_nested
    resource: str
    allowed: tuple[str, ...]
    object_id: int | None = None
    variation_id: int | None = None
    child: str | None = None


def positive_id(segment: str) -> int | None:
    if not _ID.match(segment):
        return None
    value = int(segment)
    return value if value > 0 else None


def wsgi_path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it (werkzeug's ``request.path`` collapses leading
    slashes, turning ``//bookings`` into ``/bookings``): ``PATH_INFO``, decoded as werkzeug does."""
    raw: str = environ.get("PATH_INFO") or "/"
    return raw.encode("latin-1").decode("utf-8", "replace")


def split(path: str) -> list[str]:
    """Path segments, one trailing slash forgiven: ``"/tours/1/"`` -> ``["tours", "1"]``."""
    if path.endswith("/") and len(path) > 1:
        path = path[:-1]
    return path[1:].split("/")


def resolve(method: str, path: str) -> Route | None:
    segments = split(path)
    resource = segments[0]
    if resource not in RESOURCES:
        return None
    if len(segments) == 1:
        return collection(resource)
    if len(segments) == 2 and segments[1] == "resource" and method == "POST":
        return collection(resource)
    object_id = positive_id(segments[1])
    if object_id is None:
        return None
    if len(segments) == 2:
        return Route("object", resource, WRITE_OBJECT if is_writable(resource) else READ, object_id)
    if len(segments) == 3:
        return below_object(resource, object_id, segments[2])
    if len(segments) == 4:
        return below_variation(resource, object_id, segments[2], segments[3])
    return None


def collection(resource: str) -> Route:
    return Route("collection", resource, WRITE_COLLECTION if is_writable(resource) else READ)


def below_object(resource: str, object_id: int, segment: str) -> Route | None:
    definition = RESOURCES[resource]
    if segment in definition["nested"]:
        return Route("nested", resource, READ, object_id, child=segment)
    variation_id = positive_id(segment)
    if definition["variations"] is None or variation_id is None:
        return None
    return Route("variation", resource, READ, object_id, variation_id)


def below_variation(resource: str, object_id: int, segment: str, child: str) -> Route | None:
    definition = RESOURCES[resource]
    variation_id = positive_id(segment)
    if definition["variations"] is None or variation_id is None:
        return None
    if child not in definition["nested"] or "variation_filter" not in definition["nested"][child]:
        return None
    return Route("variation_nested", resource, READ, object_id, variation_id, child)
