"""Parity in XML: test_parity.py's requests asking for XML get the same bytes from both gateways.

The same reads (lists, links, objects, variations, nested lists, 404s), errors (400 with its
field errors, 401, 404, 405 with Allow, 502) and writes, with `Accept: application/xml` (or
`?format=xml`, or `text/xml`) and XML bodies (`Content-Type: application/xml`). Each answer is
also checked against openapi.yaml by reading the XML back into JSON data
(`tests.support.contract.decode_xml`), and every read's XML must carry the JSON answer's data.
Writes in XML leave the records a JSON write leaves. The format rules (ties, q-values, an
`Accept` the API cannot serve, unknown `?format=`) are asserted here on the wire; their full
tables are in tests/support/xml_cases.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.parity.test_parity import (
    BOOKING,
    CUSTOMER,
    HOST,
    INVALID_WRITES,
    NOT_ALLOWED,
    READS,
    UNKNOWN_PATHS,
    WRITES,
    first_variation,
    forged_dry_run,
    stored,
    timeless,
)
from tests.support import HEADERS, World, make_world
from tests.support.answers import Answer
from tests.support.contract import (
    assert_conforms,
    assert_xml_conforms,
    decode_xml,
    load_spec,
    response_schema,
)

XML = {"Accept": "application/xml"}
XML_TYPE = "application/xml; charset=utf-8"
XML_BODY = {"Content-Type": "application/xml"}
DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'
CREATED = re.compile(rb"<date_created>([^<]*)</date_created>")


def error(status: int, message: str, errors: bytes = b"") -> bytes:
    return DECLARATION + (
        b"<root><http_status_code>%d</http_status_code><message>%s</message>"
        b"<errors>%s</errors></root>" % (status, message.encode(), errors)
    )


NOT_FOUND = error(404, "Not found.")
NOT_FOUND_JSON = b'{"http_status_code": 404, "message": "Not found.", "errors": []}'
UNAUTHORIZED = error(401, "Missing or invalid X-Application-Key.")
INVALID_XML = error(400, "Invalid XML body.")


def send_xml(base: str, method: str, path: str, *, contract: bool = True, **kwargs: Any) -> Answer:
    """`method path` asking for XML (unless `headers` say otherwise), checked against the
    contract when the answer is XML."""
    headers = {**HEADERS, **HOST, **XML, **kwargs.pop("headers", {})}
    answer = Answer.of(requests.request(method, base + path, headers=headers, timeout=10, **kwargs))
    if method != "HEAD":
        assert answer.header("Content-Length") == str(len(answer.body))
    if contract and answer.header("Content-Type") == "application/json":
        assert_conforms(load_spec(), method, path, answer.status, answer.json())
    elif contract:
        assert_xml_conforms(load_spec(), method, path, answer.status, answer.body)
    return answer


def both_xml(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, **kwargs: Any
) -> tuple[Answer, Answer]:
    path = path.format(vid=first_variation(world.url("operations"), 1))
    return send_xml(legacy_url, method, path, **kwargs), send_xml(drf_url, method, path, **kwargs)


def as_data(method: str, path: str, answer: Answer) -> Any:
    """An XML answer read back into JSON data, its schema telling the types."""
    schema = response_schema(load_spec(), method, path, answer.status, "application/xml")
    assert schema is not None
    return decode_xml(load_spec(), schema, answer.body)


def xml_body(data: Any) -> bytes:
    """A request body in XML by the documented mapping, written with ElementTree (neither
    gateway's writer): objects as child elements, list items as `<list-item>`, booleans as
    `true`/`false`, numbers as JSON text, null as an empty element."""
    root = ET.Element("root")
    fill(root, data)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            fill(ET.SubElement(element, key), item)
    elif isinstance(value, list):
        for item in value:
            fill(ET.SubElement(element, "list-item"), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, int | float):
        element.text = json.dumps(value)
    elif value is not None:
        element.text = str(value)


@pytest.mark.parametrize("path", READS)
def test_reads(world: World, legacy_url: str, drf_url: str, path: str) -> None:
    """The same bytes from both, and the data of the JSON answer."""
    legacy, drf = both_xml(world, legacy_url, drf_url, "GET", path)
    assert drf == legacy
    assert legacy.header("Content-Type") == XML_TYPE
    assert legacy.body.startswith(DECLARATION + b"<root>")
    assert legacy.header("Allow") is None
    path = path.format(vid=first_variation(world.url("operations"), 1))
    json_answer = requests.get(legacy_url + path, headers={**HEADERS, **HOST}, timeout=10)
    assert json_answer.status_code == legacy.status
    assert as_data("GET", path, legacy) == json_answer.json()


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Accept": "text/xml"}, ""),
        ({"Accept": "application/xml;q=0.9, */*;q=0.8"}, ""),
        ({"Accept": "application/json;q=0.5, text/xml"}, ""),
        ({"Accept": "*/*"}, "format=xml"),
        ({"Accept": "application/json"}, "format=xml"),
        ({"Accept": "text/csv"}, "format=xml"),
        ({"Accept": "application/xml"}, "format="),
    ],
)
@pytest.mark.parametrize("path", ["/bookings/2", "/tours?page=2&max_per_page=3", "/nowhere"])
def test_ways_of_asking_for_xml(
    world: World, legacy_url: str, drf_url: str, headers: Any, query: str, path: str
) -> None:
    path += ("&" if "?" in path else "?") + query if query else ""
    legacy, drf = both_xml(world, legacy_url, drf_url, "GET", path, headers=headers)
    assert drf == legacy
    assert legacy.header("Content-Type") == XML_TYPE
    plain = send_xml(legacy_url, "GET", path.replace("format=xml", "format="), headers=XML)
    assert legacy.body == plain.body


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Accept": "application/json, application/xml"}, ""),
        ({"Accept": "application/xml, application/json"}, ""),
        ({"Accept": "*/*"}, ""),
        ({"Accept": "application/*"}, ""),
        ({"Accept": "application/xml;q=0, */*"}, ""),
        ({"Accept": "text/csv"}, ""),
        ({"Accept": "text/html, image/png;q=0.5"}, ""),
        ({"Accept": "application/xml;q=2"}, ""),
        ({"Accept": "application/xml"}, "format=json"),
    ],
)
@pytest.mark.parametrize("path", ["/bookings/2", "/nowhere"])
def test_json_wins_ties_and_what_the_api_cannot_serve(
    world: World, legacy_url: str, drf_url: str, headers: Any, query: str, path: str
) -> None:
    """No 406: an Accept the API cannot serve gets JSON, as it always did."""
    path = f"{path}?{query}" if query else path
    legacy, drf = both_xml(world, legacy_url, drf_url, "GET", path, headers=headers)
    assert drf == legacy
    assert legacy.header("Content-Type") == "application/json"
    assert legacy.status in (200, 404)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "vary"),
    [
        ("GET", "/bookings/2", {"Accept": "application/json"}, 200, "Accept"),
        ("GET", "/bookings/2", XML, 200, "Accept"),
        ("GET", "/tours?page=2&max_per_page=3", {"Accept": "*/*"}, 200, "Accept"),
        ("OPTIONS", "/tours", XML, 200, "Accept"),
        ("GET", "/nowhere", XML, 404, "Accept"),
        ("GET", "/tours?page=0", {"Accept": "text/csv"}, 400, "Accept"),
        ("DELETE", "/bookings/2", XML, 405, "Accept"),
        ("GET", "/bookings/2", {"X-Application-Key": "wrong"}, 401, "Accept"),
        ("GET", "/bookings/2?format=yaml", XML, 404, "Accept"),
        ("GET", "/bookings/2?format=", XML, 200, "Accept"),
        ("GET", "/bookings/2?format=xml", {"Accept": "application/json"}, 200, None),
        ("GET", "/nowhere?format=json", XML, 404, None),
    ],
)
def test_vary_accept_when_accept_chose_the_format(
    world: World,
    legacy_url: str,
    drf_url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    vary: str | None,
) -> None:
    """JSON, XML and error answers say exactly `Vary: Accept` on both when Accept chose their
    format, and nothing when `?format=` did (the URL then tells the representations apart)."""
    legacy, drf = both_xml(world, legacy_url, drf_url, method, path, headers=headers)
    assert drf == legacy
    assert (legacy.status, legacy.header("Vary")) == (status, vary)


@pytest.mark.parametrize("value", ["csv", "XML", "yaml", "json2"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/bookings"),
        ("GET", "/bookings/1"),
        ("GET", "/itineraries/1/{vid}/itinerary_maps"),
        ("POST", "/bookings"),
        ("DELETE", "/bookings/1"),
        ("OPTIONS", "/tours"),
        ("GET", "/nowhere"),
    ],
)
@pytest.mark.parametrize("accept", ["application/xml", "*/*"])
def test_an_unknown_format_is_not_found_after_the_key_check(
    world: World, legacy_url: str, drf_url: str, value: str, method: str, path: str, accept: str
) -> None:
    """404 before the method check (so DELETE is not a 405) and before any body is read; in
    the format Accept asks for. Without a key: 401."""
    path = f"{path}?format={value}"
    kwargs: dict[str, Any] = {"headers": {"Accept": accept}, "data": b"<oops"}
    legacy, drf = both_xml(world, legacy_url, drf_url, method, path, **kwargs)
    assert drf == legacy
    assert legacy.status == 404
    assert legacy.body == (NOT_FOUND if accept == "application/xml" else NOT_FOUND_JSON)
    no_key = {"X-Application-Key": "", "Accept": accept}
    legacy, drf = both_xml(world, legacy_url, drf_url, method, path, headers=no_key)
    assert drf == legacy
    assert legacy.status == 401


@pytest.mark.parametrize("path", ["/bookings/1", "/tours", "/nowhere", "/bookings/resource"])
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS", "DELETE", "TRACE"])
def test_bad_keys(world: World, legacy_url: str, drf_url: str, path: str, method: str) -> None:
    headers = {"X-Application-Key": "wrong"}
    legacy, drf = both_xml(world, legacy_url, drf_url, method, path, headers=headers)
    assert drf == legacy
    assert (legacy.status, legacy.header("Content-Type"), legacy.body) == (
        401,
        XML_TYPE,
        UNAUTHORIZED,
    )


@pytest.mark.parametrize("path", ["/bookings", "/nowhere"])
def test_forged_dry_runs_are_refused_in_xml(
    world: World, legacy_url: str, drf_url: str, path: str
) -> None:
    headers = {**XML, **forged_dry_run("malformed", "GET", path, b"")}
    legacy, drf = both_xml(world, legacy_url, drf_url, "GET", path, contract=False, headers=headers)
    assert drf == legacy
    assert (legacy.status, legacy.body) == (403, error(403, "Invalid dry-run signature."))


@pytest.mark.parametrize(("method", "path", "allow"), NOT_ALLOWED)
def test_methods_not_allowed(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, allow: str
) -> None:
    legacy, drf = both_xml(world, legacy_url, drf_url, method, path, data=xml_body({}))
    assert drf == legacy
    assert (legacy.status, legacy.header("Allow")) == (405, allow)
    assert legacy.body == error(405, f'Method "{method}" not allowed.')


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
@pytest.mark.parametrize("method", ["TRACE", "DELETE", "OPTIONS", "PUT"])
def test_any_method_on_an_unknown_path_is_not_found(
    world: World, legacy_url: str, drf_url: str, method: str, path: str
) -> None:
    legacy, drf = both_xml(world, legacy_url, drf_url, method, path)
    assert drf == legacy
    assert (legacy.status, legacy.header("Allow"), legacy.body) == (404, None, NOT_FOUND)


@pytest.mark.parametrize(
    "path", ["/bookings", "/bookings/1", "/tours/1/departures", "/itineraries/1/{vid}"]
)
def test_options(world: World, legacy_url: str, drf_url: str, path: str) -> None:
    legacy, drf = both_xml(world, legacy_url, drf_url, "OPTIONS", path, contract=False)
    assert drf == legacy
    assert legacy.status == 200
    assert legacy.header("Content-Type") in (XML_TYPE, None)


@pytest.mark.parametrize("path", ["/bookings/1", "/tours/1/departures", "/nowhere", "/tours/0"])
def test_head(world: World, legacy_url: str, drf_url: str, path: str) -> None:
    legacy, drf = both_xml(world, legacy_url, drf_url, "HEAD", path, contract=False)
    get = send_xml(legacy_url, "GET", path)
    assert drf == legacy
    assert legacy == Answer(get.status, get.headers, b"")


@pytest.mark.parametrize("accept", ["application/xml", "application/json"])
@pytest.mark.parametrize(("method", "path", "body"), INVALID_WRITES)
def test_rejected_writes(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, body: Any, accept: str
) -> None:
    """Fields arrive as text and get the messages a JSON string would; bodies that hold no
    object are `Invalid XML body.`."""
    headers = {**XML_BODY, "Accept": accept}
    data = xml_body(body)
    legacy, drf = both_xml(world, legacy_url, drf_url, method, path, headers=headers, data=data)
    assert legacy.status in (400, 404)
    assert drf == legacy


def test_field_errors_in_xml(world: World, legacy_url: str, drf_url: str) -> None:
    body = xml_body({**BOOKING, "travellers": "x", "currency": "", "total_amount": ""})
    legacy, drf = both_xml(
        world, legacy_url, drf_url, "POST", "/bookings", headers=XML_BODY, data=body
    )
    assert drf == legacy
    assert legacy.body == error(
        400,
        "Invalid data.",
        b"<list-item><field>travellers</field><message>A valid integer is required.</message>"
        b'</list-item><list-item><field>currency</field><message>"" is not a valid choice.'
        b"</message></list-item><list-item><field>total_amount</field><message>A valid number"
        b" is required.</message></list-item>",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{oops",
        b'{"travellers": 3}',
        b"<root><travellers>3</travellers>",
        b"<root>text</root>",
        b"<root><list-item>1</list-item></root>",
        b"<root><a>&undefined;</a></root>",
        b'<!DOCTYPE root [<!ENTITY x "y">]><root><travellers>&x;</travellers></root>',
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><a>&x;</a></r>',
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><r><a>&c;</a></r>',
        b'<?xml version="1.0" encoding="shift_jis"?><r/>',
    ],
)
@pytest.mark.parametrize("content_type", ["application/xml", "text/xml; charset=utf-8"])
def test_bodies_that_are_not_xml_objects(
    world: World, legacy_url: str, drf_url: str, data: bytes, content_type: str
) -> None:
    headers = {"Content-Type": content_type}
    legacy, drf = both_xml(
        world, legacy_url, drf_url, "POST", "/bookings", headers=headers, data=data
    )
    assert (legacy.status, legacy.body) == (400, INVALID_XML)
    assert drf == legacy


def timeless_xml(answer: Answer) -> Answer:
    """`answer` with its `date_created` (each gateway's clock) blanked, length kept."""
    body = CREATED.sub(
        lambda found: b"<date_created>%s</date_created>" % (b"-" * len(found[1])), answer.body
    )
    return Answer(answer.status, answer.headers, body)


def with_xml_id(answer: Answer, resource: str, old: int, new: int) -> Answer:
    """`answer` as it would read for object `new` instead of `old` (same resource)."""
    body = answer.body.replace(b"<root><id>%d</id>" % old, b"<root><id>%d</id>" % new, 1)
    name = resource.encode()
    body = body.replace(b"/%s/%d<" % (name, old), b"/%s/%d<" % (name, new))
    headers = tuple(
        (name, str(len(body)) if name == "content-length" else value)
        for name, value in answer.headers
    )
    return Answer(answer.status, headers, body)


def write_through_both(
    world: World, urls: tuple[str, str], method: str, paths: tuple[str, str], body: Any
) -> list[Answer]:
    answers = [
        send_xml(url, method, path, headers=XML_BODY, data=xml_body(body))
        for url, path in zip(urls, paths, strict=True)
    ]
    assert answers[0].header("Content-Type") == XML_TYPE
    return answers


def assert_same_write(world: World, resource: str, answers: list[Answer], ids: list[int]) -> None:
    legacy, drf = answers
    assert with_xml_id(timeless_xml(drf), resource, ids[1], ids[0]) == timeless_xml(legacy)
    assert timeless(stored(world, resource, ids[1])) == timeless(stored(world, resource, ids[0]))


def xml_id(answer: Answer) -> int:
    return int(ET.fromstring(answer.body).findtext("id") or 0)


@pytest.mark.parametrize(("resource", "created", "changed"), WRITES)
def test_writes_leave_the_same_state(
    world: World, legacy_url: str, drf_url: str, resource: str, created: Any, changed: Any
) -> None:
    urls = (legacy_url, drf_url)
    answers = write_through_both(world, urls, "POST", (f"/{resource}",) * 2, created)
    assert [answer.status for answer in answers] == [201, 201]
    ids = [xml_id(answer) for answer in answers]
    assert_same_write(world, resource, answers, ids)
    method = "PATCH" if set(changed) < set(created) or "id" in created else "PUT"
    paths = (f"/{resource}/{ids[0]}", f"/{resource}/{ids[1]}")
    answers = write_through_both(world, urls, method, paths, changed)
    assert [answer.status for answer in answers] == [200, 200]
    assert_same_write(world, resource, answers, ids)


@pytest.mark.parametrize(("resource", "created", "changed"), WRITES)
def test_an_xml_write_stores_what_a_json_write_stores(
    world: World, legacy_url: str, drf_url: str, resource: str, created: Any, changed: Any
) -> None:
    """The same body as JSON to one gateway and as XML to the other, both ways round."""
    for json_url, xml_url in ((legacy_url, drf_url), (drf_url, legacy_url)):
        by_json = requests.post(
            f"{json_url}/{resource}", json=created, headers={**HEADERS, **HOST}, timeout=10
        )
        by_xml = send_xml(xml_url, "POST", f"/{resource}", headers=XML_BODY, data=xml_body(created))
        assert (by_json.status_code, by_xml.status) == (201, 201)
        json_pk, xml_pk = by_json.json()["id"], xml_id(by_xml)
        assert timeless(stored(world, resource, xml_pk)) == timeless(
            stored(world, resource, json_pk)
        )


AWKWARD = "A&B <c> \"q\" 'a' ]]> \r\n\ttab \x01\x1f \u00e9\u65e5 \U0001f600"


def test_text_xml_cannot_carry_is_written_alike(
    world: World, legacy_url: str, drf_url: str
) -> None:
    """Escapes, a carriage return (`&#13;`), control characters (U+FFFD) and non-ASCII text,
    stored through JSON and read in XML."""
    customer = {**CUSTOMER, "last_name": AWKWARD}
    created = requests.post(
        f"{legacy_url}/customers", json=customer, headers={**HEADERS, **HOST}, timeout=10
    )
    assert created.status_code == 201
    path = f"/customers/{created.json()['id']}"
    legacy, drf = both_xml(world, legacy_url, drf_url, "GET", path)
    assert drf == legacy
    written = "A&amp;B &lt;c&gt; \"q\" 'a' ]]&gt; &#13;\n\ttab \ufffd\ufffd \u00e9\u65e5 \U0001f600"
    assert f"<last_name>{written}</last_name>".encode() in legacy.body
    expected = {
        **created.json(),
        "last_name": AWKWARD.replace("\x01", "\ufffd").replace("\x1f", "\ufffd"),
    }
    assert as_data("GET", path, legacy) == expected


@pytest.fixture(scope="module")
def without_crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A world of its own whose crm source system is stopped."""
    with make_world(tmp_path_factory.mktemp("without_crm")) as world:
        world.start_legacy()
        world.start_drf()
        world.stack.stop("crm")
        yield world


@pytest.mark.parametrize("path", ["/bookings/1", "/bookings?page=2", "/customers/3"])
def test_a_stopped_source_system_is_502_in_xml(without_crm: World, path: str) -> None:
    urls = without_crm.url("legacy"), without_crm.url("drf")
    legacy, drf = (send_xml(url, "GET", path) for url in urls)
    assert drf == legacy
    assert (legacy.status, legacy.body) == (502, error(502, "A source system is unavailable."))
