"""Checking answers against openapi.yaml, with a minimal JSON Schema validator.

Both gateways' tests use it:

    spec = load_spec()
    assert_conforms(spec, "GET", "/bookings/1", response.status_code, response.json())

The validator knows the subset of JSON Schema openapi.yaml uses: type, properties, required,
items, enum, nullable, $ref (local) and additionalProperties; other keywords (format,
minimum, description...) are annotations here. Conventions the paths cannot express are part
of the contract (see openapi.yaml's description): a path not listed answers 401 or 404, a
method not listed on a listed path answers 401 or 405, both with the Error envelope,
OPTIONS on a listed path answers 401 or 200 with the Options object, a ``?format=``
naming no format of the API answers 401 or 404 on any path, and any method on any path may
refuse its credentials (400, 401, 403; 502 when the auth system cannot be asked: openapi.yaml's
components/securitySchemes/OAuth2).

XML answers are read back into JSON data by openapi.yaml's mapping, the schema telling each
element's type (XML has only text), then validated like JSON ones::

    assert_xml_conforms(spec, "GET", "/bookings/1", response.status_code, response.content)
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
UNMATCHED_PATH = {"401": "Unauthorized", "404": "NotFound"}
UNMATCHED_METHOD = {"401": "Unauthorized", "405": "MethodNotAllowed"}
OPTIONS = {"200": "Options", "401": "Unauthorized"}
UNKNOWN_FORMAT = {"401": "Unauthorized", "404": "NotFound"}
CREDENTIALS = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "502": "BadGateway"}
FORMATS = ("json", "xml")
JSON_MEDIA_TYPE = "application/json"
XML_MEDIA_TYPE = "application/xml"
XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'
LIST_ITEM = "list-item"
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")

Spec = Mapping[str, Any]


class ContractError(AssertionError):
    """An answer the contract does not allow."""


@cache
def _load(path: str) -> Spec:
    with open(path, encoding="utf-8") as stream:
        spec: Spec = yaml.safe_load(stream)
    return spec


def load_spec(path: Path = SPEC_PATH) -> Spec:
    """The parsed spec (cached per path; do not mutate it)."""
    return _load(str(path))


def deref(spec: Spec, reference: str) -> Mapping[str, Any]:
    """The node a local reference names: ``"#/components/schemas/Link"`` -> that schema."""
    if not reference.startswith("#/"):
        raise ValueError(f"only local references are supported: {reference}")
    target: Any = spec
    for part in reference[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    node: Mapping[str, Any] = target
    return node


def resolve(spec: Spec, node: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node` with its ``$ref``s followed to the end."""
    while "$ref" in node:
        node = deref(spec, node["$ref"])
    return node


def type_matches(name: str, instance: Any) -> bool:
    if name not in TYPES:
        raise ValueError(f"unknown type: {name}")
    if isinstance(instance, bool) and name in ("integer", "number"):
        return False
    return isinstance(instance, TYPES[name])


def validate(spec: Spec, schema: Mapping[str, Any], instance: Any, where: str = "$") -> list[str]:
    """Every way `instance` breaks `schema`, as ``"<json path>: <what>"`` lines (empty: valid).

    >>> validate({}, {"type": "integer"}, "3")
    ["$: expected integer, got str '3'"]
    """
    while True:
        if instance is None and schema.get("nullable"):
            return []
        if "$ref" not in schema:
            break
        schema = deref(spec, schema["$ref"])
    declared = schema.get("type")
    if declared is not None:
        names = declared if isinstance(declared, list) else [declared]
        if not any(type_matches(name, instance) for name in names):
            kind = type(instance).__name__
            return [f"{where}: expected {'|'.join(names)}, got {kind} {instance!r:.60}"]
    if "enum" in schema and instance not in schema["enum"]:
        return [f"{where}: {instance!r:.60} is not one of {schema['enum']}"]
    if isinstance(instance, dict):
        return validate_object(spec, schema, instance, where)
    if isinstance(instance, list) and "items" in schema:
        return [
            error
            for index, item in enumerate(instance)
            for error in validate(spec, schema["items"], item, f"{where}[{index}]")
        ]
    return []


def validate_object(
    spec: Spec, schema: Mapping[str, Any], instance: dict[str, Any], where: str
) -> list[str]:
    errors = [
        f"{where}: missing {name!r}" for name in schema.get("required", ()) if name not in instance
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, value in instance.items():
        if name in properties:
            errors.extend(validate(spec, properties[name], value, f"{where}.{name}"))
        elif extra is False:
            errors.append(f"{where}: unexpected property {name!r}")
        elif isinstance(extra, Mapping):
            errors.extend(validate(spec, extra, value, f"{where}.{name}"))
    return errors


def segment_matches(part: str, segment: str) -> bool:
    """A literal part matches itself; a ``{param}`` (all ours are ids) a positive integer."""
    if part.startswith("{") and part.endswith("}"):
        return segment.isascii() and segment.isdigit() and int(segment) > 0
    return part == segment


def match_path(spec: Spec, path: str) -> str | None:
    """The path template of `path` (query and one trailing slash ignored); literal beats
    template: ``/itineraries/1/itinerary_maps`` is not ``/itineraries/{id}/{variation_id}``."""
    path = urlsplit(path).path
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    segments = path.split("/")
    best: tuple[int, str] | None = None
    for template in spec["paths"]:
        parts = template.split("/")
        if len(parts) != len(segments):
            continue
        if all(segment_matches(p, s) for p, s in zip(parts, segments, strict=True)):
            params = sum(p.startswith("{") for p in parts)
            if best is None or params < best[0]:
                best = (params, template)
    return None if best is None else best[1]


def unknown_format(path: str) -> bool:
    """Whether `path` asks for a format the API does not have (the first ``?format=``)."""
    values = parse_qs(urlsplit(path).query, keep_blank_values=True).get("format", [""])
    return values[0] not in ("", *FORMATS)


def response_schema(
    spec: Spec, method: str, path: str, status: int, media_type: str = JSON_MEDIA_TYPE
) -> Mapping[str, Any] | None:
    """The schema the contract gives this answer in `media_type`; ContractError when the
    status or the media type is not documented for it; None when it has no body."""
    code = str(status)
    template = match_path(spec, path)
    if unknown_format(path):
        documented: Mapping[str, Any] = UNKNOWN_FORMAT
    elif template is None:
        documented = UNMATCHED_PATH
    elif method.upper() == "OPTIONS":
        documented = OPTIONS
    elif method.lower() not in spec["paths"][template]:
        documented = UNMATCHED_METHOD
    else:
        documented = spec["paths"][template][method.lower()]["responses"]
    documented = {**CREDENTIALS, **documented}
    if code not in documented and "default" not in documented:
        raise ContractError(f"{method} {path}: status {status} not documented ({template})")
    response = documented.get(code, documented.get("default"))
    if isinstance(response, str):
        response = {"$ref": f"#/components/responses/{response}"}
    content = resolve(spec, response).get("content")
    if not content:
        return None
    if media_type not in content:
        raise ContractError(f"{method} {path}: {status} not documented as {media_type}")
    schema: Mapping[str, Any] = content[media_type]["schema"]
    return schema


def check_response(spec: Spec, method: str, path: str, status: int, body: Any) -> list[str]:
    """Every way an answer breaks the contract (empty: it conforms)."""
    try:
        schema = response_schema(spec, method, path, status)
    except ContractError as exc:
        return [str(exc)]
    if schema is None:
        return [] if body is None else [f"{method} {path}: {status} should have no body"]
    return validate(spec, schema, body)


def assert_conforms(spec: Spec, method: str, path: str, status: int, body: Any) -> None:
    errors = check_response(spec, method, path, status, body)
    if errors:
        raise ContractError(f"{method} {path} -> {status}:\n  " + "\n  ".join(errors[:20]))


def xml_value(spec: Spec, schema: Mapping[str, Any], element: ET.Element) -> Any:
    """`element` as JSON data by openapi.yaml's XML mapping, `schema` telling the types.

    Child elements are an object's members, ``<list-item>`` children an array's items; an
    empty element is null where the schema allows it, else its type's empty value; text is
    a string, or an integer, number or boolean (``true``/``false``) where the schema says so
    and the text is one (else left a string, for the validator to report).

    >>> xml_value({}, {"type": "array", "items": {"type": "integer"}},
    ...           ET.fromstring("<a><list-item>1</list-item><list-item/></a>"))
    [1, '']
    """
    nullable = bool(schema.get("nullable"))
    while "$ref" in schema:
        schema = deref(spec, schema["$ref"])
        nullable = nullable or bool(schema.get("nullable"))
    children, text = list(element), element.text or ""
    if not children and not text and nullable:
        return None
    kind = schema.get("type")
    if kind == "array" and all(child.tag == LIST_ITEM for child in children):
        return [xml_value(spec, schema.get("items", {}), child) for child in children]
    if kind == "object" or children:
        return {
            child.tag: xml_value(spec, member_schema(schema, child.tag), child)
            for child in children
        }
    return scalar(kind, text)


def member_schema(schema: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    return properties.get(name, extra if isinstance(extra, Mapping) else {})


def scalar(kind: Any, text: str) -> Any:
    if kind == "integer" and _INTEGER.fullmatch(text):
        return int(text)
    if kind == "number" and _NUMBER.fullmatch(text):
        return json.loads(text)
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def decode_xml(spec: Spec, schema: Mapping[str, Any], document: bytes) -> Any:
    """An XML answer's data: the declaration and ``<root>`` checked, then `xml_value`."""
    if not document.startswith(XML_DECLARATION):
        raise ContractError(f"no XML declaration: {document[:60]!r}")
    root = ET.fromstring(document)
    if root.tag != "root":
        raise ContractError(f"root element is <{root.tag}>, not <root>")
    return xml_value(spec, schema, root)


def check_xml_response(spec: Spec, method: str, path: str, status: int, body: bytes) -> list[str]:
    """Every way an XML answer breaks the contract (empty: it conforms)."""
    try:
        schema = response_schema(spec, method, path, status, XML_MEDIA_TYPE)
        if schema is None:
            return [] if body == b"" else [f"{method} {path}: {status} should have no body"]
        return validate(spec, schema, decode_xml(spec, schema, body))
    except (ContractError, ET.ParseError) as exc:
        return [str(exc)]


def assert_xml_conforms(spec: Spec, method: str, path: str, status: int, body: bytes) -> None:
    errors = check_xml_response(spec, method, path, status, body)
    if errors:
        raise ContractError(f"{method} {path} -> {status} (XML):\n  " + "\n  ".join(errors[:20]))
