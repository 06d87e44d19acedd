"""proxy.http.exchange: the facts about heads the parsers work with."""

from __future__ import annotations

import httptools
import pytest

from proxy.http.exchange import content_length, name_sizes


@pytest.mark.parametrize(
    "value",
    [b"0", b"7", b"007", b"1024", b"9" * 19, b"18446744073709551616", b"5 ", b"5\t", b"12 \t "],
)
def test_content_length_is_what_int_reads(value: bytes) -> None:
    assert content_length(value) == int(value)


@pytest.mark.parametrize("raw", [b"5", b"5 ", b"5\t", b"  5", b"05"])
def test_content_length_reads_every_value_llhttp_passes_on(raw: bytes) -> None:
    """The values come from llhttp's parse of a real head, spaces and all."""
    seen: list[bytes] = []

    class Head:
        def on_header(self, name: bytes, value: bytes) -> None:
            seen.append(value)

    parser = httptools.HttpResponseParser(Head())
    parser.feed_data(b"HTTP/1.1 200 OK\r\nContent-Length: " + raw + b"\r\n\r\nhello")
    assert [content_length(value) for value in seen] == [5]


def test_name_sizes_has_a_bit_per_length() -> None:
    sizes = name_sizes([b"te", b"upgrade"])
    assert [length for length in range(20) if sizes >> length & 1] == [2, 7]
