"""Request handlers: one catch-all route, dispatched on the resource definitions."""

from __future__ import annotations

import datetime
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import NotFound

from legacy_flask import formats, objects
from legacy_flask.dryrun import is_dry_run
from legacy_flask.errors import api_response, error_response, method_not_allowed
from legacy_flask.resources import RESOURCES, read_write_backend
from legacy_flask.sources import Record, Sources
from legacy_flask.urls import Route, resolve, wsgi_path
from legacy_flask.validation import parse_paging, validate

bp = Blueprint("api", __name__)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def sources() -> Sources:
    """The source systems, signing every call of a dry run as one."""
    source_systems: Sources = current_app.extensions["legacy_flask.sources"]
    return source_systems.dry_run() if is_dry_run() else source_systems


def base() -> str:
    headers = request.headers
    return objects.base_url(
        request.environ.get("wsgi.url_scheme", "http"),
        headers.get("Host", ""),
        headers.get("X-Forwarded-Proto"),
        headers.get("X-Forwarded-Host"),
    )


@bp.route("/", defaults={"path": ""}, methods=METHODS)
@bp.route("/<path:path>", methods=METHODS)
def dispatch(path: str) -> Response:
    route = resolve(request.method, wsgi_path(request.environ))
    if route is None:
        raise NotFound()
    if request.method not in route.allowed:
        return method_not_allowed(request.method, route.allowed)
    if request.method == "OPTIONS":
        return options_response(route)
    return HANDLERS[(route.kind, request.method)](route)


def options_response(route: Route) -> Response:
    """200 naming the resource the URL serves and its methods, in the body (gapipy's
    ``options()`` reads it as JSON) and in ``Allow``."""
    name = route.child or route.resource
    response = api_response({"name": name, "methods": list(route.allowed)})
    response.headers["Allow"] = ", ".join(route.allowed)
    return response


def fetch_merged(resource: str, object_id: int) -> Record | None:
    """The merged record of one id, or None when the first source has none."""
    backends = RESOURCES[resource]["backends"]
    first = sources().get(backends[0][1], backends[0][2], object_id)
    if first is None:
        return None
    later = [sources().get(system, coll, object_id) for _, system, coll in backends[1:]]
    return objects.merge([first, *later])


def merged_page(
    resource: str, filters: dict[str, Any], page: int, per_page: int
) -> tuple[int, list[Record]]:
    """One page of merged records: one request per source, later ones by ``ids=``."""
    backends = RESOURCES[resource]["backends"]
    params = {**filters, "offset": (page - 1) * per_page, "limit": per_page}
    count, items = sources().query(backends[0][1], backends[0][2], params)
    ids = [item["id"] for item in items]
    later = [sources().by_ids(system, coll, ids) for _, system, coll in backends[1:]]
    merged = [objects.merge([item, *(extra.get(item["id"]) for extra in later)]) for item in items]
    return count, merged


def list_response(resource: str, filters: dict[str, Any]) -> Response:
    page, per_page, errors = parse_paging(
        request.args.get("page"), request.args.get("max_per_page")
    )
    if errors:
        return error_response(400, errors=errors)
    count, records = merged_page(resource, filters, page, per_page)
    root = base()
    results = [objects.build_object(resource, record, root) for record in records]
    url = root + request.path.rstrip("/")
    return api_response(objects.list_envelope(results, count, page, per_page, url))


def get_collection(route: Route) -> Response:
    return list_response(route.resource, {})


def get_object(route: Route) -> Response:
    assert route.object_id is not None
    merged = fetch_merged(route.resource, route.object_id)
    if merged is None:
        raise NotFound()
    return api_response(objects.build_object(route.resource, merged, base()))


def parent_exists(resource: str, object_id: int) -> bool:
    _, system, collection = RESOURCES[resource]["backends"][0]
    return sources().get(system, collection, object_id) is not None


def fetch_variation(route: Route) -> Record | None:
    variations = RESOURCES[route.resource]["variations"]
    assert route.variation_id is not None
    record = sources().get(variations["system"], variations["collection"], route.variation_id)
    if record is None or record.get(variations["parent_field"]) != route.object_id:
        return None
    return record


def get_nested(route: Route) -> Response:
    assert route.object_id is not None and route.child is not None
    if not parent_exists(route.resource, route.object_id):
        raise NotFound()
    rule = RESOURCES[route.resource]["nested"][route.child]
    return list_response(route.child, {rule["filter"]: route.object_id})


def get_variation(route: Route) -> Response:
    assert route.object_id is not None
    record = fetch_variation(route)
    if record is None:
        raise NotFound()
    return api_response(objects.build_variation(route.resource, route.object_id, record, base()))


def get_variation_nested(route: Route) -> Response:
    assert route.child is not None
    if fetch_variation(route) is None:
        raise NotFound()
    rule = RESOURCES[route.resource]["nested"][route.child]
    filters = {rule["filter"]: route.object_id, rule["variation_filter"]: route.variation_id}
    return list_response(route.child, filters)


def now() -> str:
    """The UTC time to the second, as the API writes date-times: ``2026-11-28T10:00:00Z``
    (``DEMO_NOW`` when a test pinned it)."""
    pinned: str | None = current_app.config.get("DEMO_NOW")
    return pinned or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_body() -> dict[str, Any] | None:
    """The body's object: XML when Content-Type says so (``formats.from_xml``), else JSON
    whatever the Content-Type; None when it is not one."""
    if formats.is_xml(request.headers.get("Content-Type")):
        return formats.from_xml(request.get_data())
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else None


def invalid_body_message() -> str:
    if formats.is_xml(request.headers.get("Content-Type")):
        return "Invalid XML body."
    return "Invalid JSON body."


def write(route: Route, partial: bool) -> Response:
    """POST (no object id), PUT or PATCH: validate, send to the read-write source, answer merged."""
    resource, object_id = route.resource, route.object_id
    definition = RESOURCES[resource]
    system, collection = read_write_backend(resource)
    if object_id is not None and sources().get(system, collection, object_id) is None:
        raise NotFound()
    body = request_body()
    if body is None:
        return error_response(400, invalid_body_message())
    data, errors = validate(definition["writable"], body, partial)
    if errors:
        return error_response(400, errors=errors)
    if object_id is None:
        data = {**definition["create_defaults"], **data}
        if definition["create_now"]:
            data[definition["create_now"]] = now()
    # PUT replaces what the client may write and keeps the rest (date_created, and optional
    # fields the client left out): the source merges it, as it does a PATCH.
    method = "POST" if object_id is None else "PATCH"
    record = sources().write(method, system, collection, data, object_id)
    if record is None:
        raise NotFound()
    later = [sources().get(s, c, record["id"]) for _, s, c in definition["backends"][1:]]
    obj = objects.build_object(resource, objects.merge([record, *later]), base())
    return api_response(obj, 201 if object_id is None else 200)


HANDLERS = {
    ("collection", "GET"): get_collection,
    ("collection", "HEAD"): get_collection,
    ("collection", "POST"): lambda route: write(route, partial=False),
    ("object", "GET"): get_object,
    ("object", "HEAD"): get_object,
    ("object", "PUT"): lambda route: write(route, partial=False),
    ("object", "PATCH"): lambda route: write(route, partial=True),
    ("nested", "GET"): get_nested,
    ("nested", "HEAD"): get_nested,
    ("variation", "GET"): get_variation,
    ("variation", "HEAD"): get_variation,
    ("variation_nested", "GET"): get_variation_nested,
    ("variation_nested", "HEAD"): get_variation_nested,
}
