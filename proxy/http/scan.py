"""Whole heads read in one call: the common case, beside httptools.

Most reads a connection gets hold one whole message head: a request head with nothing after it,
or a response head with all (or the start) of a sized body. llhttp parses such a read through a
dozen calls from C into Python, one per header and one per step; `request_head` and
`response_head` read it in one call, and return what those callbacks would have gathered.

They accept a strict subset of what llhttp accepts, and return None for everything else: a head
cut short, anything after it, a byte outside the usual ones (obs-text, a fragment, a control
character, trailing whitespace), a header that frames a body or names an upgrade, a Connection
value other than `keep-alive` or `close`, a size near a limit. The caller then feeds the same
bytes to httptools, which decides as it always has. So the fast path is never more lenient than
llhttp, and what it accepts it reads the same: tests/proxy/http/test_scan.py holds it to
httptools on generated heads, and its C twin (_scan.pyx, where the compiled hot path runs) to
this module.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Final

from proxy import HOT_PATH_MODE
from proxy.speedups import accelerator

# The methods the fast path takes (llhttp knows them all); a request with a body is not taken.
METHODS: Final = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")
ALPHANUMERIC: Final = (string.ascii_letters + string.digits).encode()
# A header name (RFC 9110 section 5.6.2).
TOKEN_BYTES: Final = ALPHANUMERIC + b"!#$%&'*+-.^_`|~"
# An origin-form target of RFC 3986's unreserved and reserved characters and `%`: no fragment,
# no byte llhttp refuses or another server might read otherwise.
TARGET_BYTES: Final = ALPHANUMERIC + b"-._~!$&'()*+,;=:@/?%"


def one_of(chars: bytes) -> bytes:
    """A regular expression's class of `chars`."""
    return b"[" + re.escape(chars) + b"]"


REQUEST_LINE: Final = re.compile(
    b"(" + b"|".join(METHODS) + b") (/" + one_of(TARGET_BYTES) + rb"*) HTTP/1\.([01])"
)
STATUS_LINE: Final = re.compile(rb"HTTP/1\.1 ([2-5][0-9][0-9]) ([\t\x20-\x7e]*)")
# A field line: a token, a colon, optional whitespace, then a value of visible ASCII (spaces and
# tabs inside) that does not end in whitespace.
FIELD_LINE: Final = re.compile(
    b"(" + one_of(TOKEN_BYTES) + rb"+):[ \t]*([\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)"
)
# Names that make a head one for httptools: they frame a body, switch protocols, or carry
# connection options the fast path does not read.
REQUEST_REFUSED: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"upgrade", b"proxy-connection"}
)
# A response read whole passes its field lines on as they came, but for the Connection line
# (`lines`): every other hop-by-hop name (proxy.http.messages.HOP_BY_HOP) leaves it to httptools.
RESPONSE_REFUSED: Final = frozenset(
    {
        b"transfer-encoding", b"upgrade", b"proxy-connection", b"keep-alive", b"te", b"trailer",
        b"proxy-authenticate", b"proxy-authorization",
    }
)  # fmt: skip
REQUEST_ID: Final = b"x-request-id"
CONNECTION_VALUES: Final = (b"keep-alive", b"close")
MAX_FIELDS: Final = 100  # proxy.dataplane.reading's MAX_HEADER_FIELDS
MAX_LENGTH_DIGITS: Final = 18  # a Content-Length that fits in 63 bits, whatever its digits
END: Final = b"\r\n\r\n"

Headers = list[tuple[bytes, bytes]]  # proxy.http.exchange's (which imports this module)
# method, target, version, headers, keep-alive, Connection present
RequestHead = tuple[str, bytes, str, Headers, bool, bool]
# status, reason, the field lines (each with its CRLF: see `pairs`), where the Connection line
# starts and ends in them (0, 0: none), X-Request-ID among them, keep-alive, Content-Length
# (-1: none), where the body starts
ResponseHead = tuple[int, bytes, bytes, int, int, bool, bool, int, int]
RequestReader = Callable[[bytes, tuple[int, ...]], RequestHead | None]
ResponseReader = Callable[[bytes, int], ResponseHead | None]


def readers() -> tuple[RequestReader | None, ResponseReader | None]:
    """The C twin's `request_head` and `response_head` where the compiled hot path runs; None
    elsewhere, and httptools reads every head. (Interpreted, this module's regular expressions
    cost more than httptools' callbacks: it is the twin's specification, not its fallback.)"""
    twin = accelerator("proxy.http._scan", HOT_PATH_MODE)
    if twin is None:
        return None, None
    return twin.request_head, twin.response_head


def request_head(data: bytes, limits: tuple[int, ...]) -> RequestHead | None:
    """A read that is exactly one request head without a body, as httptools would parse it; None
    for anything else. The `limits` are the listener's (request line, one field, all fields): a
    head near one is left to httptools. (One tuple of any length, not three ints: compiled, the
    caller passes it as it is, where it would box each number again on every call.)

    >>> request_head(b"GET /a?b HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", (8192, 8192, 65536))
    ('GET', b'/a?b', '1.1', [(b'Host', b'x')], True, False)
    """
    max_line, max_field, max_fields_total = limits
    end = data.find(END)
    if end < 0 or end + 4 != len(data):
        return None
    lines = data[:end].split(b"\r\n")
    line = REQUEST_LINE.fullmatch(lines[0])
    if line is None or len(line.group(2)) > max_line:
        return None
    read = fields(lines[1:], (b"host", b"connection"), REQUEST_REFUSED)
    if read is None or b"host" not in read[1]:
        return None
    headers, values = read
    sizes = [len(name) + len(value) + 4 for name, value in headers]
    if sizes and (max(sizes) > max_field or sum(sizes) > max_fields_total):
        return None
    connection = values.get(b"connection")
    version = "1.1" if line.group(3) == b"1" else "1.0"
    keep_alive = connection != b"close" if version == "1.1" else connection == b"keep-alive"
    method = line.group(1).decode("ascii")
    return method, line.group(2), version, headers, keep_alive, connection is not None


def response_head(data: bytes, max_head: int) -> ResponseHead | None:
    """A read that starts with a whole response head (status 200-599) framed by Content-Length
    or without a body (204, 304), with nothing after the body, as httptools would parse it;
    None for anything else. Not for the answer to a HEAD request (the caller knows the method).

    Its field lines are kept as bytes, not made into pairs: the client's head copies them,
    leaving out the one hop-by-hop line such a head can have, `Connection` (at `lines[start:
    end]`). `pairs(lines)` gives the headers, for the rare reader that wants them.

    >>> response_head(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi", 65536)
    (200, b'OK', b'Content-Length: 2\\r\\n', 0, 0, False, True, 2, 38)
    """
    end = data.find(END)
    if end < 0 or end + 4 > max_head:
        return None
    lines = data[:end].split(b"\r\n")
    line = STATUS_LINE.fullmatch(lines[0])
    if line is None:
        return None
    read = fields(lines[1:], (b"content-length", b"connection"), RESPONSE_REFUSED)
    if read is None:
        return None
    headers, values = read
    length = values.get(b"content-length")
    if length is not None and (not length.isdigit() or len(length) > MAX_LENGTH_DIGITS):
        return None
    size = -1 if length is None else int(length)
    status = int(line.group(1))
    body = len(data) - end - 4
    if status == 204 or status == 304:
        if body:
            return None
    elif size < 0 or body > size:
        return None
    keep_alive = values.get(b"connection") != b"close"
    start = hop_start = hop_end = 0
    echoed = False
    for field_line, (name, _) in zip(lines[1:], headers, strict=True):
        low = name.lower()
        if low == b"connection":
            hop_start, hop_end = start, start + len(field_line) + 2
        echoed = echoed or low == REQUEST_ID
        start += len(field_line) + 2
    first = len(lines[0]) + 2
    field_lines = data[first : end + 2] if headers else b""
    return (
        status, line.group(2), field_lines, hop_start, hop_end, echoed, keep_alive, size, end + 4
    )  # fmt: skip


def pairs(lines: bytes) -> Headers:
    """The (name, value) pairs of field lines `response_head` read.

    >>> pairs(b"Content-Length: 2\\r\\nX-Foo:\\tbar\\r\\n")
    [(b'Content-Length', b'2'), (b'X-Foo', b'bar')]
    """
    read = fields(lines.split(b"\r\n")[:-1], (), frozenset())
    assert read is not None, lines
    return read[0]


def fields(
    lines: list[bytes], read: tuple[bytes, ...], refused: frozenset[bytes]
) -> tuple[Headers, dict[bytes, bytes]] | None:
    """The field lines as (name, value) pairs, and the values of the names `read` (lower case;
    a Connection value too): None if a line is not a field line, a name `read` repeats, a name
    `refused` appears, the Connection value is not one of CONNECTION_VALUES, or there are more
    than MAX_FIELDS lines."""
    if len(lines) > MAX_FIELDS:
        return None
    headers: Headers = []
    values: dict[bytes, bytes] = {}
    for line in lines:
        match = FIELD_LINE.fullmatch(line)
        if match is None:
            return None
        name, value = match.group(1, 2)
        low = name.lower()
        if low in refused or low in values:
            return None
        if low in read:
            values[low] = value.lower() if low == b"connection" else value
        headers.append((name, value))
    if values.get(b"connection", CONNECTION_VALUES[0]) not in CONNECTION_VALUES:
        return None
    return headers, values
