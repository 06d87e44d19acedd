"""proxy/http/messages.py's header rules: names lowered (without the call for the usual
spellings) and what a `Connection` field adds to the hop-by-hop headers."""

from __future__ import annotations

import pytest

from proxy.http.messages import (
    NOTHING,
    USUAL_SPELLINGS,
    Request,
    connection_tokens,
    lowered,
    value_tokens,
)


@pytest.mark.parametrize(
    "name",
    [b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"cOnTeNt-LeNgTh", b"Host", b"hOST",
     b"Transfer-Encoding", b"Keep-Alive", b"CONNECTION", b"X-Foo", b"", b"\xc3\x89T\xc3\xa9"],
)  # fmt: skip
def test_lowered_is_bytes_lower(name: bytes) -> None:
    assert lowered(name) == name.lower()


def test_the_usual_spellings_are_the_watched_names_three_ways() -> None:
    assert len(USUAL_SPELLINGS) == len(set(USUAL_SPELLINGS)) == 15  # five: Title, lower, UPPER
    assert all(spelling.lower() == name for spelling, name in USUAL_SPELLINGS)


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        (b"keep-alive", NOTHING),
        (b"Keep-Alive", NOTHING),
        (b"KEEP-ALIVE", NOTHING),
        (b"Close", NOTHING),
        (b"upgrade", NOTHING),
        (b"close, X-Foo", frozenset({b"x-foo"})),
        (b"Keep-Alive , TE,  X-Bar ", frozenset({b"x-bar"})),
        (b"X-Foo,x-foo", frozenset({b"x-foo"})),
    ],
)
def test_value_tokens_name_only_other_headers(value: bytes, tokens: frozenset[bytes]) -> None:
    assert value_tokens(value) == tokens


def test_connection_tokens_gather_every_connection_field() -> None:
    headers = [(b"Connection", b"close, X-A"), (b"X-A", b"1"), (b"connection", b"X-B")]
    assert connection_tokens(headers) == frozenset({b"x-a", b"x-b"})


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/bookings/%7e?q=1", "/bookings/%7e"),
        (b"/bookings/1", "/bookings/1"),
        (b"/a?b?c", "/a"),
        (b"?x", ""),
        (b"/x?", "/x"),
        (b"*", "*"),
        (b"/caf\xc3\xa9/\xff?\xfe", "/caf\xc3\xa9/\xff"),  # latin-1: each byte one character
    ],
)
def test_the_path_is_the_target_before_its_query(target: bytes, path: str) -> None:
    request = Request("GET", target, "1.1", [], "127.0.0.1", False, True)
    assert request.path == path
    assert request.path == target.partition(b"?")[0].decode("latin-1")
