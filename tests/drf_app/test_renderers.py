"""XML answers (drf_app.renderers): the bytes legacy writes, on the shared table."""

from __future__ import annotations

from typing import Any

import pytest

from drf_app.renderers import XMLRenderer
from tests.support.xml_cases import BAD_NAMES, DECLARATION, DOCUMENTS


@pytest.mark.parametrize(("data", "document"), DOCUMENTS)
def test_render(data: Any, document: bytes) -> None:
    assert XMLRenderer().render(data) == DECLARATION + document


def test_no_data_is_an_empty_body() -> None:
    assert XMLRenderer().render(None) == b""


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_key_that_is_no_element_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an XML element name"):
        XMLRenderer().render({name: 1})


def test_content_type() -> None:
    renderer = XMLRenderer()
    assert (renderer.media_type, renderer.charset, renderer.format) == (
        "application/xml",
        "utf-8",
        "xml",
    )
