"""XML request bodies (drf_app.parsers): legacy's readings, on the shared table."""

from __future__ import annotations

import time
from io import BytesIO
from typing import Any

import pytest

from drf_app.errors import InvalidXMLBody, describe
from drf_app.parsers import XMLParser
from tests.support.xml_cases import BODIES, billion_laughs


@pytest.mark.parametrize(("body", "expected"), BODIES)
def test_parse(body: bytes, expected: dict[str, Any] | None) -> None:
    if expected is None:
        with pytest.raises(InvalidXMLBody) as caught:
            XMLParser().parse(BytesIO(body))
        assert describe(caught.value) == (400, "Invalid XML body.", [])
    else:
        assert XMLParser().parse(BytesIO(body)) == expected


def test_an_entity_bomb_is_refused_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(InvalidXMLBody):
        XMLParser().parse(BytesIO(billion_laughs()))
    assert time.monotonic() - started < 0.1
