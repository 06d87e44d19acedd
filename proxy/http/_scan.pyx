# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""`request_head` and `response_head` of proxy/http/scan.py, in C: a whole head read in one pass
over its bytes, with tables for the byte classes instead of regular expressions.

scan.py is the source of truth. This module takes its rules from it (the methods, the byte
classes, the names that leave a head to httptools, the limits) and is tested against it for the
same result on the same reads (tests/proxy/http/test_scan.py). Built by setup.py where Cython and
a C compiler exist; it runs where the compiled hot path does (`scan.readers`,
`proxy.speedups.accelerator`).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy

from proxy.http.scan import (
    CONNECTION_VALUES,
    MAX_FIELDS,
    MAX_LENGTH_DIGITS,
    METHODS,
    REQUEST_ID,
    REQUEST_REFUSED,
    RESPONSE_REFUSED,
    TARGET_BYTES,
    TOKEN_BYTES,
)

# Byte classes, one table each: TOKEN (a header name), TARGET (a request target after its
# slash), TEXT (inside a value or reason: tab, space and visible ASCII), VISIBLE (a value's first
# and last byte).
cdef unsigned char TOKEN[256]
cdef unsigned char TARGET[256]
cdef unsigned char TEXT[256]
cdef unsigned char VISIBLE[256]


cdef void fill(unsigned char *table, bytes chars):
    cdef Py_ssize_t i
    for i in range(256):
        table[i] = 0
    for i in range(len(chars)):
        table[<unsigned char>chars[i]] = 1


fill(TOKEN, TOKEN_BYTES)
fill(TARGET, TARGET_BYTES)
fill(VISIBLE, bytes(range(0x21, 0x7f)))
fill(TEXT, b"\t" + bytes(range(0x20, 0x7f)))

cdef enum Kind:
    PLAIN
    HOST
    CONNECTION
    LENGTH
    REFUSED
    ECHO  # X-Request-ID in a response: noted, and it may repeat

cdef struct Name:
    const unsigned char *text  # lower case
    Py_ssize_t size
    int kind

# The names each direction reads or refuses, with their kind; the methods taken, in
# scan.METHODS's order; the common names. The bytes objects the tables point into are kept alive
# by KEPT.
cdef Name REQUEST_NAMES[32]
cdef Name RESPONSE_NAMES[32]
cdef Name METHOD_TABLE[32]
cdef int REQUEST_COUNT = 0, RESPONSE_COUNT = 0, METHOD_COUNT = 0
cdef list KEPT = []


cdef int fill_names(Name *table, list names) except -1:
    cdef int count = 0
    assert len(names) <= 32
    for text, kind in names:
        KEPT.append(text)
        table[count].text = <const unsigned char *>PyBytes_AS_STRING(text)
        table[count].size = PyBytes_GET_SIZE(text)
        table[count].kind = kind
        count += 1
    return count


REQUEST_COUNT = fill_names(
    REQUEST_NAMES,
    [(b"host", HOST), (b"connection", CONNECTION)] + [(n, REFUSED) for n in sorted(REQUEST_REFUSED)],
)
RESPONSE_COUNT = fill_names(
    RESPONSE_NAMES,
    [(b"content-length", LENGTH), (b"connection", CONNECTION), (REQUEST_ID, ECHO)]
    + [(n, REFUSED) for n in sorted(RESPONSE_REFUSED)],
)
METHOD_COUNT = fill_names(METHOD_TABLE, [(method, PLAIN) for method in METHODS])
cdef tuple METHOD_NAMES = tuple(method.decode("ascii") for method in METHODS)

# Header names most messages carry, spelled as most peers spell them: such a name is this very
# bytes object in the headers read (one allocation less per field, and one free), and so is its
# value when it is the one the name had last (LAST_VALUES).
# No credentials among them (`Authorization`, `Cookie`, `Set-Cookie`): a value kept in
# LAST_VALUES outlives its request.
COMMON_NAMES = (
    b"Host", b"User-Agent", b"Accept", b"Accept-Encoding", b"Accept-Language", b"Connection",
    b"Content-Type", b"Content-Length", b"Date", b"Server", b"Cache-Control", b"X-Request-ID",
    b"X-Forwarded-For", b"X-Forwarded-Proto", b"Vary", b"ETag", b"Last-Modified", b"Location",
    b"Allow", b"Referer", b"Origin", b"Accept-Ranges", b"Content-Encoding", b"Expires",
)  # fmt: skip
cdef Name COMMON_TABLE[32]
cdef tuple COMMON_OBJECTS = COMMON_NAMES
cdef int COMMON_COUNT = 0
COMMON_COUNT = fill_names(COMMON_TABLE, [(name, PLAIN) for name in COMMON_NAMES])
# Per common name, the value its last field had: most peers send the same few values again and
# again. Bytes are immutable, so one object serves every header list that holds the value.
cdef list LAST_VALUES = [None] * COMMON_COUNT
cdef bytes KEEP_ALIVE = CONNECTION_VALUES[0]
cdef bytes CLOSE = CONNECTION_VALUES[1]
cdef enum:
    MOST_FIELDS = 100
assert MAX_FIELDS == MOST_FIELDS
cdef int MAX_DIGITS = MAX_LENGTH_DIGITS
assert CONNECTION_VALUES == (b"keep-alive", b"close")


cdef inline unsigned char lower(unsigned char c) noexcept:
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint same_lowered(const unsigned char *text, Py_ssize_t size, const unsigned char *low,
                              Py_ssize_t low_size) noexcept:
    """`text[:size].lower() == low[:low_size]`, for ASCII."""
    cdef Py_ssize_t i
    if size != low_size:
        return False
    for i in range(size):
        if lower(text[i]) != low[i]:
            return False
    return True


cdef uint64_t size_bits(Name *names, int count) noexcept:
    """A bit per size of the names: a name of another size is none of them (`kind_of`)."""
    cdef uint64_t bits = 0
    cdef int i
    for i in range(count):
        bits |= (<uint64_t>1) << names[i].size
    return bits


cdef uint64_t REQUEST_SIZES = size_bits(REQUEST_NAMES, REQUEST_COUNT)
cdef uint64_t RESPONSE_SIZES = size_bits(RESPONSE_NAMES, RESPONSE_COUNT)
assert all(len(name) < 64 for name in REQUEST_REFUSED | RESPONSE_REFUSED)


cdef inline int kind_of(const unsigned char *name, Py_ssize_t size, Name *names, int count,
                        uint64_t sizes) noexcept:
    cdef int i
    if size >= 64 or not (sizes >> size) & 1:
        return PLAIN
    for i in range(count):
        if size == names[i].size and same_lowered(name, size, names[i].text, size):
            return names[i].kind
    return PLAIN


cdef int method_of(const unsigned char *text, Py_ssize_t size) noexcept:
    """The index of `text` in scan.METHODS (exact case), or -1."""
    cdef int i
    for i in range(METHOD_COUNT):
        if size == METHOD_TABLE[i].size and memcmp(text, METHOD_TABLE[i].text, size) == 0:
            return i
    return -1


cdef int connection_value(const unsigned char *value, Py_ssize_t size) noexcept:
    """1 for `keep-alive`, 2 for `close` (any case), 0 for anything else (none: 0 too)."""
    cdef const unsigned char *keep_alive = <const unsigned char *>PyBytes_AS_STRING(KEEP_ALIVE)
    cdef const unsigned char *close = <const unsigned char *>PyBytes_AS_STRING(CLOSE)
    if same_lowered(value, size, keep_alive, PyBytes_GET_SIZE(KEEP_ALIVE)):
        return 1
    if same_lowered(value, size, close, PyBytes_GET_SIZE(CLOSE)):
        return 2
    return 0


cdef inline bint crlf(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) noexcept:
    return i + 1 < n and p[i] == 13 and p[i + 1] == 10


cdef struct Field:
    Py_ssize_t name, name_size, value, value_size, next  # offsets; next: after its CRLF


cdef uint64_t ONES = 0x0101010101010101
cdef uint64_t HIGHS = 0x8080808080808080


cdef inline bint plain_word(const unsigned char *p) noexcept:
    """Whether the 8 bytes at `p` are all space or visible ASCII (0x20-0x7e: TEXT but the tab),
    tested a word at a time: no byte below 0x20, none above 0x7e."""
    cdef uint64_t x
    memcpy(&x, p, 8)
    return ((x - ONES * 0x20) & ~x & HIGHS) == 0 and ((x + ONES) | x) & HIGHS == 0


cdef inline bint read_field(const unsigned char *p, Py_ssize_t at, Py_ssize_t n,
                            Field *field) noexcept:
    """The field line at `at` (scan.FIELD_LINE, then CRLF): False if it is not one."""
    cdef Py_ssize_t i = at, stop
    while i < n and TOKEN[p[i]]:
        i += 1
    if i == at or i >= n or p[i] != 58:  # ':'
        return False
    field.name, field.name_size = at, i - at
    i += 1
    while i < n and (p[i] == 32 or p[i] == 9):
        i += 1
    stop = i
    while stop + 8 <= n and plain_word(p + stop):
        stop += 8
    while stop < n and TEXT[p[stop]]:
        stop += 1
    if stop == i or not VISIBLE[p[stop - 1]] or not crlf(p, stop, n):
        return False
    field.value, field.value_size = i, stop - i
    field.next = stop + 2
    return True


cdef struct Seen:
    int kinds  # a bit per Kind seen
    int connection  # connection_value's
    Py_ssize_t hop_start, hop_end  # the Connection line's offsets, its CRLF included
    Py_ssize_t length, length_size  # the Content-Length value's offset and size
    Py_ssize_t count, largest, total  # field lines; the sizes the listener limits
    Py_ssize_t end  # after the blank line


cdef bint check_fields(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, Name *names,
                       int count, uint64_t sizes, Seen *seen, Field *fields) noexcept:
    """scan.fields's checks, from the line at `i` to the blank line (`seen.end`): False where
    it returns None. The lines read go to `fields` (MOST_FIELDS of them at most)."""
    cdef Field *field
    cdef int kind
    cdef Py_ssize_t size
    while not crlf(p, i, n):
        if seen.count == MOST_FIELDS:
            return False
        field = &fields[seen.count]
        if not read_field(p, i, n, field):
            return False
        kind = kind_of(p + field.name, field.name_size, names, count, sizes)
        if kind != PLAIN:
            if kind == REFUSED or kind != ECHO and seen.kinds & (1 << kind):
                return False
            seen.kinds |= 1 << kind
            if kind == CONNECTION:
                seen.connection = connection_value(p + field.value, field.value_size)
                if seen.connection == 0:
                    return False
                seen.hop_start, seen.hop_end = i, field.next
            elif kind == LENGTH:
                seen.length, seen.length_size = field.value, field.value_size
        size = field.name_size + field.value_size + 4
        seen.count += 1
        seen.total += size
        if size > seen.largest:
            seen.largest = size
        i = field.next
    seen.end = i + 2
    return True


cdef list read_fields(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, Name *names,
                      int count, uint64_t sizes, Seen *seen):
    """scan.fields, from the line at `i` to the blank line (`seen.end`): the headers, or None.
    Every line is checked before the first object is made."""
    cdef Field fields[MOST_FIELDS]
    cdef Field *field
    cdef Py_ssize_t k
    cdef list headers
    cdef tuple pair
    cdef bytes name, value
    cdef int common
    if not check_fields(p, i, n, names, count, sizes, seen, fields):
        return None
    headers = PyList_New(seen.count)
    for k in range(seen.count):
        field = &fields[k]
        pair = PyTuple_New(2)
        common = common_index(p + field.name, field.name_size)
        if common < 0:
            name = PyBytes_FromStringAndSize(<const char *>p + field.name, field.name_size)
            value = PyBytes_FromStringAndSize(<const char *>p + field.value, field.value_size)
        else:
            name = <bytes>COMMON_OBJECTS[common]
            value = same_value(common, p + field.value, field.value_size)
        Py_INCREF(name)
        PyTuple_SET_ITEM(pair, 0, name)
        Py_INCREF(value)
        PyTuple_SET_ITEM(pair, 1, value)
        Py_INCREF(pair)
        PyList_SET_ITEM(headers, k, pair)
    return headers


cdef int common_index(const unsigned char *name, Py_ssize_t size) noexcept:
    """The index of the name in COMMON_NAMES (exact spelling), or -1."""
    cdef int i
    for i in range(COMMON_COUNT):
        if (
            size == COMMON_TABLE[i].size
            and name[0] == COMMON_TABLE[i].text[0]
            and memcmp(name, COMMON_TABLE[i].text, size) == 0
        ):
            return i
    return -1


cdef bytes same_value(int common, const unsigned char *text, Py_ssize_t size):
    """The value of a field named COMMON_NAMES[common]: the bytes object the last such field
    got when the value is the same (`Server: nginx`, `Connection: keep-alive`, a `Date` within
    its second), else a new one, kept for the next."""
    cdef object last = LAST_VALUES[common]
    if (
        last is not None
        and PyBytes_GET_SIZE(last) == size
        and memcmp(PyBytes_AS_STRING(last), text, size) == 0
    ):
        return <bytes>last
    fresh = PyBytes_FromStringAndSize(<const char *>text, size)
    LAST_VALUES[common] = fresh
    return fresh


def request_head(bytes data, tuple limits):
    """scan.request_head."""
    cdef Py_ssize_t max_line, max_field, max_fields_total
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i = 0, target
    cdef int method
    cdef unsigned char version
    cdef Seen seen
    max_line, max_field, max_fields_total = limits
    while i < n and p[i] != 32:
        i += 1
    method = method_of(p, i)
    if method < 0 or i + 1 >= n or p[i + 1] != 47:  # '/'
        return None
    target = i + 1
    i = target + 1
    while i < n and TARGET[p[i]]:
        i += 1
    # " HTTP/1.0" or " HTTP/1.1", then CRLF
    if i - target > max_line or i + 9 > n or memcmp(p + i, b" HTTP/1.", 8) != 0:
        return None
    version = p[i + 8]
    if (version != 48 and version != 49) or not crlf(p, i + 9, n):  # '0', '1'
        return None
    seen.kinds = seen.connection = seen.count = seen.largest = seen.total = 0
    headers = read_fields(p, i + 11, n, REQUEST_NAMES, REQUEST_COUNT, REQUEST_SIZES, &seen)
    if headers is None or seen.end != n or not seen.kinds & (1 << HOST):
        return None
    if seen.largest > max_field or seen.total > max_fields_total:
        return None
    name = METHOD_NAMES[method]
    path = PyBytes_FromStringAndSize(<const char *>p + target, i - target)
    if version == 49:  # '1'
        return (name, path, "1.1", headers, seen.connection != 2, seen.connection != 0)
    return (name, path, "1.0", headers, seen.connection == 1, seen.connection != 0)


def response_head(bytes data, Py_ssize_t max_head):
    """scan.response_head."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i, first, body, length = -1, k
    cdef int status
    cdef Seen seen
    cdef Field fields[MOST_FIELDS]
    # "HTTP/1.1 ", three digits (the first 2-5), a space, then the reason and CRLF
    if n < 13 or memcmp(p, b"HTTP/1.1 ", 9) != 0 or p[12] != 32:
        return None
    if p[9] < 50 or p[9] > 53 or p[10] < 48 or p[10] > 57 or p[11] < 48 or p[11] > 57:
        return None
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + p[11] - 48
    i = 13
    while i < n and TEXT[p[i]]:
        i += 1
    if not crlf(p, i, n):
        return None
    first = i + 2
    seen.kinds = seen.connection = seen.count = seen.largest = seen.total = 0
    seen.hop_start = seen.hop_end = first
    if not check_fields(p, first, n, RESPONSE_NAMES, RESPONSE_COUNT, RESPONSE_SIZES, &seen, fields):
        return None
    if seen.end > max_head:
        return None
    if seen.kinds & (1 << LENGTH):
        if seen.length_size > MAX_DIGITS:
            return None
        length = 0
        for k in range(seen.length, seen.length + seen.length_size):
            if p[k] < 48 or p[k] > 57:
                return None
            length = length * 10 + p[k] - 48
    body = n - seen.end
    if status == 204 or status == 304:
        if body:
            return None
    elif length < 0 or body > length:
        return None
    return (
        status,
        PyBytes_FromStringAndSize(<const char *>p + 13, i - 13),
        PyBytes_FromStringAndSize(<const char *>p + first, seen.end - 2 - first),
        seen.hop_start - first,
        seen.hop_end - first,
        seen.kinds & (1 << ECHO) != 0,
        seen.connection != 2,
        length,
        seen.end,
    )
