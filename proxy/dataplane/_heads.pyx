# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""`request_head` and `response_head` of proxy/dataplane/heads.py, in C: each head written into
one buffer instead of built a line at a time.

heads.py is the source of truth. This module follows it step by step, takes its rules from it
(the names it drops, the status lines, the size bits) and is tested against it for the same bytes
on the same messages (tests/proxy/dataplane/test_heads_speedup.py). Built by setup.py where
Cython and a C compiler exist; it runs where the compiled hot path does (`heads.writers`,
`proxy.speedups.accelerator`).

What it saves: the Python version makes a bytes object per header line and joins them; a line
here is three copies into a buffer, and a head is one allocation.
"""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from proxy.dataplane.heads import (
    DROPPED,
    FORWARDED,
    REQUEST_NAME_SIZES,
    RESPONSE_NAME_SIZES,
    STATUS_LINE_STARTS,
)
from proxy.http.exchange import Response
from proxy.http.messages import HOP_BY_HOP, NOTHING, Request, connection_tokens


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL

cdef extern from *:
    """
    /* What `obj.name` gives, through the class's own data descriptor for `name` (a compiled
       class's getset, a __slots__ member): no lookup by name. */
    static PyObject *strangler_descr_get(PyObject *descr, PyObject *obj) {
        return Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
    }
    static int strangler_descr_set(PyObject *descr, PyObject *obj, PyObject *value) {
        return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
    }
    """
    object descr_get "strangler_descr_get"(object descr, object obj)
    int descr_set "strangler_descr_set"(object descr, object obj, object value) except -1


# The attributes read of a Request and a Response, by their descriptors: read so, an attribute
# costs a tenth of a lookup by name (the heads read twenty per request). Only for objects of
# exactly these classes (`fast`); any other object is read by name.

cdef object descriptor(type cls, str name):
    found = cls.__dict__[name]
    assert hasattr(type(found), "__set__"), f"{cls.__name__}.{name} is not a data descriptor"
    return found


cdef type REQUEST = Request
cdef type RESPONSE = Response
cdef object Q_HEADERS = descriptor(Request, "headers")
cdef object Q_CONNECTION = descriptor(Request, "connection")
cdef object Q_TRUSTED = descriptor(Request, "trusted")
cdef object Q_REQUEST_ID = descriptor(Request, "request_id")
cdef object Q_CHUNKED = descriptor(Request, "chunked")
cdef object Q_UPGRADE = descriptor(Request, "upgrade")
cdef object Q_PEER = descriptor(Request, "peer")
cdef object Q_METHOD = descriptor(Request, "method")
cdef object Q_TARGET = descriptor(Request, "target")
cdef object Q_VERSION = descriptor(Request, "version")
cdef object Q_KEEP_ALIVE = descriptor(Request, "keep_alive")
cdef object S_CONNECTION = descriptor(Response, "connection")
cdef object S_HEADERS = descriptor(Response, "headers")
cdef object S_STATUS = descriptor(Response, "status")
cdef object S_REASON = descriptor(Response, "reason")
cdef object S_HAS_BODY = descriptor(Response, "has_body")
cdef object S_SIZED = descriptor(Response, "sized")
cdef object S_CHUNKED = descriptor(Response, "chunked")
cdef object S_LINES = descriptor(Response, "lines")
cdef object S_HOP_START = descriptor(Response, "hop_start")
cdef object S_HOP_END = descriptor(Response, "hop_end")
cdef object S_ECHOED = descriptor(Response, "echoed")


cdef inline object field(object obj, bint fast, object descr):
    return descr_get(descr, obj) if fast else getattr(obj, name_of(descr))


cdef str name_of(object descr):
    """The attribute a descriptor serves: a slot's or getset's name, a property's getter's."""
    return descr.fget.__name__ if isinstance(descr, property) else descr.__name__


cdef inline int set_request_id(object request, bint fast, object value) except -1:
    if fast:
        return descr_set(Q_REQUEST_ID, request, value)
    request.request_id = value
    return 0

# A name longer than 63 bytes has no bit: none of the names looked for is that long (checked).
cdef uint64_t REQUEST_SIZES = REQUEST_NAME_SIZES
cdef uint64_t RESPONSE_SIZES = RESPONSE_NAME_SIZES
assert REQUEST_NAME_SIZES < 1 << 64 and RESPONSE_NAME_SIZES < 1 << 64

cdef frozenset _NOTHING = NOTHING
cdef dict _STATUS_LINE_STARTS = STATUS_LINE_STARTS


# The names each head treats apart, from heads.py's sets, as C tables: a name is classified by
# comparing it, case-insensitively, with the few entries of its length (no lower() copy, no
# hashing). Only `Connection`-named headers still go through a lowered copy and a set.

cdef enum Kind:
    PLAIN
    DROP  # hop-by-hop and the proxy's own (heads.DROPPED; HOP_BY_HOP for responses)
    FORWARD_FOR
    FORWARD_PROTO
    FORWARD_HOST
    FORWARD_RFC  # RFC 7239 `Forwarded`
    HOST
    REQUEST_ID


cdef struct Name:
    const char *text  # lower case
    Py_ssize_t size
    Kind kind


cdef enum:
    MOST_NAMES = 32

cdef Name REQUEST_NAMES[MOST_NAMES]
cdef Name RESPONSE_NAMES[MOST_NAMES]
cdef int REQUEST_COUNT = 0
cdef int RESPONSE_COUNT = 0
cdef list _TEXTS = []  # the bytes the tables point into, kept alive


cdef int fill(Name *names, dict kinds) except -1:
    cdef int count = 0
    assert len(kinds) <= MOST_NAMES
    for text, kind in kinds.items():
        assert text == text.lower()
        _TEXTS.append(text)
        names[count].text = PyBytes_AS_STRING(text)
        names[count].size = PyBytes_GET_SIZE(text)
        names[count].kind = kind
        count += 1
    return count


FORWARD_KINDS = {b"x-forwarded-for": FORWARD_FOR, b"x-forwarded-proto": FORWARD_PROTO,
                 b"forwarded": FORWARD_RFC}
assert not DROPPED & FORWARDED and not (DROPPED | FORWARDED) & {b"host", b"x-request-id"}
REQUEST_COUNT = fill(REQUEST_NAMES, {
    **{name: DROP for name in DROPPED},
    **{name: FORWARD_KINDS.get(name, FORWARD_HOST) for name in FORWARDED},
    b"host": HOST,
    b"x-request-id": REQUEST_ID,
})
RESPONSE_COUNT = fill(RESPONSE_NAMES, {**{name: DROP for name in HOP_BY_HOP}, b"x-request-id": REQUEST_ID})


cdef Kind kind_of(bytes name, const Name *names, int count) noexcept:
    cdef Py_ssize_t size = PyBytes_GET_SIZE(name), i
    cdef const unsigned char *text = <const unsigned char *>PyBytes_AS_STRING(name)
    cdef unsigned char c
    cdef int n
    for n in range(count):
        if names[n].size != size:
            continue
        for i in range(size):
            c = text[i]
            if (c + 32 if 65 <= c <= 90 else c) != <unsigned char>names[n].text[i]:
                break
        else:
            return names[n].kind
    return PLAIN


cdef inline bint has_size(uint64_t sizes, Py_ssize_t size) noexcept:
    return size < 64 and (sizes >> size) & 1


# the output buffer: on the stack for a usual head, on the heap past that


cdef struct Out:
    char *data
    Py_ssize_t size
    Py_ssize_t cap
    bint heap


cdef enum:
    STACK = 4096  # bytes of head kept on the stack


cdef inline int put(Out *out, const char *src, Py_ssize_t n) except -1:
    cdef Py_ssize_t need = out.size + n
    if need > out.cap:
        grow(out, need)
    memcpy(out.data + out.size, src, n)
    out.size = need
    return 0


cdef int grow(Out *out, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = need if need > 2 * out.cap else 2 * out.cap
    cdef char *grown
    if out.heap:
        grown = <char *>PyMem_Realloc(out.data, cap)
    else:
        grown = <char *>PyMem_Malloc(cap)
        if grown != NULL:
            memcpy(grown, out.data, out.size)
    if grown == NULL:
        raise MemoryError()
    out.data, out.cap, out.heap = grown, cap, True
    return 0


cdef inline int put_bytes(Out *out, bytes data) except -1:
    return put(out, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef inline int put_line(Out *out, bytes name, bytes value) except -1:
    put_bytes(out, name)
    put(out, b": ", 2)
    put_bytes(out, value)
    return put(out, b"\r\n", 2)


cdef inline void release(Out *out) noexcept:
    if out.heap:
        PyMem_Free(out.data)


cdef bytes lowered(bytes name):
    """`name.lower()`: ASCII letters only, as bytes.lower."""
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(name)
    cdef bytes low = PyBytes_FromStringAndSize(NULL, n)
    cdef const unsigned char *src = <const unsigned char *>PyBytes_AS_STRING(name)
    cdef unsigned char *dst = <unsigned char *>PyBytes_AS_STRING(low)
    cdef unsigned char c
    for i in range(n):
        c = src[i]
        dst[i] = c + 32 if 65 <= c <= 90 else c
    return low


# request ids: 16 random bytes as 32 hex digits, from a pool os.urandom fills 256 ids at a time


cdef enum:
    POOL = 4096  # random bytes drawn at a time: 256 ids
cdef unsigned char pool[POOL]
cdef Py_ssize_t pool_used = POOL
cdef const char *HEX = b"0123456789abcdef"


def _forget_pool():
    """After fork: a child must not hand out its parent's ids."""
    global pool_used
    pool_used = POOL


os.register_at_fork(after_in_child=_forget_pool)


def new_request_id():
    """32 hex digits, as `heads.new_request_id` (which draws them from `random`)."""
    return fresh_id()


cdef bytes fresh_id():
    global pool_used
    cdef bytes fresh
    cdef char out[32]
    cdef Py_ssize_t i
    cdef unsigned char byte
    if pool_used + 16 > POOL:
        fresh = os.urandom(POOL)
        memcpy(pool, PyBytes_AS_STRING(fresh), POOL)
        pool_used = 0
    for i in range(16):
        byte = pool[pool_used + i]
        out[2 * i] = HEX[byte >> 4]
        out[2 * i + 1] = HEX[byte & 15]
    pool_used += 16
    return PyBytes_FromStringAndSize(out, 32)


def request_head(request, backend):
    """`heads.request_head`: the upstream request head (see there)."""
    cdef bint fast = type(request) is REQUEST
    cdef list headers = field(request, fast, Q_HEADERS)
    cdef frozenset named = (
        connection_tokens(headers) if field(request, fast, Q_CONNECTION) else _NOTHING
    )
    cdef bint trusted = field(request, fast, Q_TRUSTED)
    cdef bint filtering = len(named) > 0
    cdef object host = None, forwarded_host = None, proto = None
    cdef bint given_id = False
    cdef list chain = None
    cdef bytes name, value, request_id
    cdef Kind kind
    cdef const char *peer_text
    cdef Py_ssize_t peer_size
    cdef tuple pair
    cdef Out out
    cdef char stack[STACK]
    out.data, out.size, out.cap, out.heap = stack, 0, STACK, False
    try:
        for pair in headers:
            name = <bytes?>pair[0]
            value = <bytes?>pair[1]
            if not filtering and not has_size(REQUEST_SIZES, PyBytes_GET_SIZE(name)):
                put_line(&out, name, value)
                continue
            kind = kind_of(name, REQUEST_NAMES, REQUEST_COUNT)
            if kind == DROP or filtering and lowered(name) in named:
                continue
            if kind == FORWARD_FOR or kind == FORWARD_PROTO or kind == FORWARD_HOST:
                if trusted:
                    if kind == FORWARD_FOR:
                        if chain is None:
                            chain = []
                        chain.append(value)
                    elif kind == FORWARD_PROTO:
                        proto = value
                    else:
                        forwarded_host = value
                continue
            if kind == FORWARD_RFC:
                if trusted:
                    put_line(&out, name, value)  # RFC 7239: kept as it came
                continue
            if kind == HOST and host is None:
                host = value
            elif kind == REQUEST_ID and not given_id:
                given_id = True
                set_request_id(request, fast, value)
            put_line(&out, name, value)
        if not given_id:
            request_id = field(request, fast, Q_REQUEST_ID) or fresh_id()
            set_request_id(request, fast, request_id)
            put(&out, b"X-Request-ID: ", 14)
            put_bytes(&out, request_id)
            put(&out, b"\r\n", 2)
        if field(request, fast, Q_CHUNKED):
            put(&out, b"Transfer-Encoding: chunked\r\n", 28)
        upgrade = field(request, fast, Q_UPGRADE)
        if upgrade is not None:
            put(&out, b"Upgrade: ", 9)
            put_bytes(&out, upgrade)
            put(&out, b"\r\nConnection: upgrade\r\n", 23)
        peer_text = PyUnicode_AsUTF8AndSize(field(request, fast, Q_PEER), &peer_size)
        put(&out, b"X-Forwarded-For: ", 17)
        if chain is not None:
            for value in chain:
                put_bytes(&out, value)
                put(&out, b", ", 2)
        put(&out, peer_text, peer_size)
        put(&out, b"\r\nX-Forwarded-Proto: ", 21)
        put_bytes(&out, proto or b"http")
        put(&out, b"\r\nX-Forwarded-Host: ", 20)
        added_host = None  # the backend's, for a client that sent no Host
        if host is None:
            host = added_host = f"{backend.host}:{backend.port}".encode()
        put_bytes(&out, forwarded_host or host)
        put(&out, b"\r\n\r\n", 4)
        method, target = field(request, fast, Q_METHOD), field(request, fast, Q_TARGET)
        return joined(method, target, added_host, &out)
    finally:
        release(&out)


cdef bytes joined(str method, bytes target, bytes host, Out *out):
    """The request line (then `Host`, first, when the client sent none) before `out`."""
    cdef Py_ssize_t method_size
    cdef const char *method_text = PyUnicode_AsUTF8AndSize(method, &method_size)
    cdef Py_ssize_t target_size = PyBytes_GET_SIZE(target)
    cdef Py_ssize_t host_size = 0 if host is None else PyBytes_GET_SIZE(host) + 8
    cdef Py_ssize_t size = method_size + 1 + target_size + 11 + host_size + out.size
    cdef bytes head = PyBytes_FromStringAndSize(NULL, size)
    cdef char *at = PyBytes_AS_STRING(head)
    memcpy(at, method_text, method_size)
    at += method_size
    at[0] = 32  # " "
    at += 1
    memcpy(at, PyBytes_AS_STRING(target), target_size)
    at += target_size
    memcpy(at, b" HTTP/1.1\r\n", 11)
    at += 11
    if host is not None:
        memcpy(at, b"Host: ", 6)
        memcpy(at + 6, PyBytes_AS_STRING(host), host_size - 8)
        memcpy(at + host_size - 2, b"\r\n", 2)
        at += host_size
    memcpy(at, out.data, out.size)
    return head


def response_head(response, request, bint draining):
    """`heads.response_head`: the client's response head, whether its body is re-chunked, and
    whether the connection stays open (see there)."""
    cdef bint fast = type(response) is RESPONSE
    cdef bint fast_request = type(request) is REQUEST
    cdef frozenset named = field(response, fast, S_CONNECTION)
    cdef bint filtering = len(named) > 0
    cdef bytes lines = field(response, fast, S_LINES)
    cdef bint echoed = field(response, fast, S_ECHOED)
    cdef Py_ssize_t hop_start, hop_end
    cdef bytes name, value, start, request_id
    cdef Kind kind
    cdef tuple pair
    cdef Out out
    cdef char stack[STACK]
    status = field(response, fast, S_STATUS)
    start = _STATUS_LINE_STARTS.get(status) or b"HTTP/1.1 %d " % status
    out.data, out.size, out.cap, out.heap = stack, 0, STACK, False
    try:
        put_bytes(&out, start)
        put_bytes(&out, field(response, fast, S_REASON))
        put(&out, b"\r\n", 2)
        if lines is not None and PyBytes_GET_SIZE(lines):  # read whole: around its Connection line
            hop_start = field(response, fast, S_HOP_START)
            hop_end = field(response, fast, S_HOP_END)
            if not 0 <= hop_start <= hop_end <= PyBytes_GET_SIZE(lines):
                raise ValueError("the Connection line is not within the field lines")
            put(&out, PyBytes_AS_STRING(lines), hop_start)
            put(&out, PyBytes_AS_STRING(lines) + hop_end, PyBytes_GET_SIZE(lines) - hop_end)
        else:
            for pair in field(response, fast, S_HEADERS):
                name = <bytes?>pair[0]
                value = <bytes?>pair[1]
                if filtering or has_size(RESPONSE_SIZES, PyBytes_GET_SIZE(name)):
                    kind = kind_of(name, RESPONSE_NAMES, RESPONSE_COUNT)
                    if kind == DROP or filtering and lowered(name) in named:
                        continue
                    if kind == REQUEST_ID:
                        echoed = True
                put_line(&out, name, value)
        request_id = field(request, fast_request, Q_REQUEST_ID)
        if not echoed and request_id:
            put(&out, b"X-Request-ID: ", 14)
            put_bytes(&out, request_id)
            put(&out, b"\r\n", 2)
        has_body = field(response, fast, S_HAS_BODY)
        sized = field(response, fast, S_SIZED) and b"content-length" not in named
        http11 = field(request, fast_request, Q_VERSION) == "1.1"
        chunked = http11 and not sized and (field(response, fast, S_CHUNKED) or has_body)
        keep_alive = (
            field(request, fast_request, Q_KEEP_ALIVE)
            and not draining
            and (sized or chunked or not has_body)
        )
        if chunked:
            put(&out, b"Transfer-Encoding: chunked\r\n", 28)
        if not keep_alive and http11:
            put(&out, b"Connection: close\r\n", 19)
        elif keep_alive and not http11:
            put(&out, b"Connection: keep-alive\r\n", 24)
        put(&out, b"\r\n", 2)
        return PyBytes_FromStringAndSize(out.data, out.size), chunked and has_body, keep_alive
    finally:
        release(&out)
