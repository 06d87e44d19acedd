from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from drf_app.pagination import PageRequest, page_envelope, parse_page_request

INVALID = "A valid integer is required."


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, PageRequest(1, 20)),
        ({"page": "3", "max_per_page": "7"}, PageRequest(3, 7)),
        ({"max_per_page": "500"}, PageRequest(1, 100)),
    ],
)
def test_page_requests(query: dict[str, str], expected: PageRequest) -> None:
    assert parse_page_request(query) == expected


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ({"page": "0"}, ["page"]),
        ({"page": "x"}, ["page"]),
        ({"max_per_page": "-1"}, ["max_per_page"]),
        ({"page": "1.5", "max_per_page": ""}, ["page", "max_per_page"]),
    ],
)
def test_bad_page_requests_name_each_field(query: dict[str, str], fields: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_page_request(query)
    assert caught.value.detail == {field: [INVALID] for field in fields}
    assert list(caught.value.detail) == fields


def test_envelope_links_previous_and_next_only_when_they_exist() -> None:
    url = "http://h/tours"
    middle = page_envelope(url, PageRequest(2, 20), 50, [])
    assert middle == {
        "count": 50,
        "current_page": 2,
        "max_per_page": 20,
        "results": [],
        "links": [
            {"rel": "previous", "href": "http://h/tours?page=1&max_per_page=20"},
            {"rel": "next", "href": "http://h/tours?page=3&max_per_page=20"},
        ],
    }
    assert page_envelope(url, PageRequest(1, 50), 50, [])["links"] == []
    assert page_envelope(url, PageRequest(9, 50), 50, [])["links"][0]["rel"] == "previous"
