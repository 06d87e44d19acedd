"""How a live response and its shadow copy differ: pure functions over captured responses.

What is compared, in this order:

1. the status code;
2. the media type of `Content-Type` (parameters and case aside: a client parses the body by it).
   No other header is compared: Date, Server, Content-Length or Connection legitimately differ
   between two stacks, and a different body is caught by the body comparison anyway;
3. the body. When both bodies were kept whole (at most the capture cap) and both parse as JSON,
   structurally: objects member by member (member order does not matter), lists item by item,
   numbers by value (1 == 1.0), booleans apart from numbers. Fields under an `ignore` path are
   skipped. Otherwise (not JSON, or a body over the cap) by SHA-256 of the bytes, so ignore paths
   do not apply.

>>> live = Captured.of(200, b"application/json", b'{"a": 1, "b": [1, 2]}')
>>> shadow = Captured.of(200, b"application/json", b'{"a": 2, "b": [1]}')
>>> [d.text() for d in compare(live, shadow)]
['$.a: live=1 shadow=2', '$.b[1]: removed, live=2']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.routing.jsonpath import NOTHING_IGNORED, Ignore, Step, format_path

MAX_DIFFERENCES = 50
MAX_VALUE_CHARS = 200
CHANGED, ADDED, REMOVED = "changed", "added", "removed"


@dataclass(frozen=True)
class Captured:
    """One side's response as far as the comparison needs it.

    `body` is None when the body was larger than the capture cap: then only `size` and `sha256`
    (of the whole body) are known.
    """

    status: int
    content_type: bytes
    body: bytes | None
    size: int
    sha256: str

    @classmethod
    def of(cls, status: int, content_type: bytes, body: bytes) -> Captured:
        """A response kept whole (tests and small bodies)."""
        return cls(status, content_type, body, len(body), hashlib.sha256(body).hexdigest())


@dataclass(frozen=True)
class Difference:
    """`where` is `status`, `content-type`, `body`, or a JSONPath like `$.results[3].email`.

    `kind`: changed (both sides have a value), added (only the shadow has one), removed (only the
    live side has one); the missing side's value is None.
    """

    where: str
    kind: str
    live: Any
    shadow: Any

    def text(self) -> str:
        """`$.a: live=1 shadow=2`, `$.b: added, shadow="x"`, `$.c: removed, live=[]` (JSON)."""
        if self.kind == ADDED:
            return f"{self.where}: added, shadow={_show(self.shadow)}"
        if self.kind == REMOVED:
            return f"{self.where}: removed, live={_show(self.live)}"
        return f"{self.where}: live={_show(self.live)} shadow={_show(self.shadow)}"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.where, "kind": self.kind, "live": self.live, "shadow": self.shadow}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Difference:
        return cls(data["field"], data["kind"], data["live"], data["shadow"])


def _show(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("<") else json.dumps(value)


def compare(live: Captured, shadow: Captured, ignore: Ignore = NOTHING_IGNORED) -> list[Difference]:
    """Every difference (at most MAX_DIFFERENCES + 1, the last one saying how many more)."""
    found: list[Difference] = []
    if live.status != shadow.status:
        found.append(Difference("status", CHANGED, live.status, shadow.status))
    live_type, shadow_type = media_type(live.content_type), media_type(shadow.content_type)
    if live_type != shadow_type:
        found.append(Difference("content-type", CHANGED, live_type, shadow_type))
    found.extend(compare_bodies(live, shadow, ignore))
    return found


def media_type(content_type: bytes) -> str:
    """`b"Application/JSON; charset=utf-8"` -> `"application/json"`."""
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1")


def compare_bodies(live: Captured, shadow: Captured, ignore: Ignore) -> list[Difference]:
    if live.body is not None and shadow.body is not None:
        if live.body == shadow.body:
            return []
        documents = _json(live.body), _json(shadow.body)
        if documents[0] is not _NOT_JSON and documents[1] is not _NOT_JSON:
            return diff_json(documents[0], documents[1], ignore)
    elif live.sha256 == shadow.sha256:
        return []
    return [Difference("body", CHANGED, _digest(live), _digest(shadow))]


def _digest(side: Captured) -> str:
    return f"<{side.size} bytes, sha256 {side.sha256[:16]}>"


_NOT_JSON = object()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def diff_json(live: Any, shadow: Any, ignore: Ignore = NOTHING_IGNORED) -> list[Difference]:
    """Structural differences of two JSON documents, outside the ignored paths.

    >>> [d.where for d in diff_json({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}], "c": 0})]
    ['$.a[1].b', '$.c']
    """
    found: list[Difference] = []
    _walk(live, shadow, (), ignore, found)
    if len(found) > MAX_DIFFERENCES:
        more = len(found) - MAX_DIFFERENCES
        found = found[:MAX_DIFFERENCES]
        found.append(Difference("...", CHANGED, f"<{more} more>", f"<{more} more>"))
    return found


def _walk(
    live: Any, shadow: Any, path: tuple[Step, ...], ignore: Ignore, found: list[Difference]
) -> None:
    if ignore.ignored or len(found) > MAX_DIFFERENCES:
        return
    if isinstance(live, dict) and isinstance(shadow, dict):
        for key in [*live, *(key for key in shadow if key not in live)]:
            step_path = (*path, key)
            below = ignore.child(key)
            if below.ignored:
                continue
            if key not in shadow:
                found.append(Difference(format_path(step_path), REMOVED, _brief(live[key]), None))
            elif key not in live:
                found.append(Difference(format_path(step_path), ADDED, None, _brief(shadow[key])))
            else:
                _walk(live[key], shadow[key], step_path, below, found)
    elif isinstance(live, list) and isinstance(shadow, list):
        for index in range(max(len(live), len(shadow))):
            below = ignore.child(index)
            if below.ignored:
                continue
            step_path = (*path, index)
            if index >= len(shadow):
                found.append(Difference(format_path(step_path), REMOVED, _brief(live[index]), None))
            elif index >= len(live):
                found.append(Difference(format_path(step_path), ADDED, None, _brief(shadow[index])))
            else:
                _walk(live[index], shadow[index], step_path, below, found)
    elif not _same_scalar(live, shadow):
        found.append(Difference(format_path(path), CHANGED, _brief(live), _brief(shadow)))


def _same_scalar(live: Any, shadow: Any) -> bool:
    """Equal JSON values of the same kind: 1 == 1.0, but true != 1 and [] != {}."""
    if isinstance(live, bool) or isinstance(shadow, bool):
        return live is shadow
    numbers = (int, float)
    if isinstance(live, numbers) and isinstance(shadow, numbers):
        return bool(live == shadow)
    return type(live) is type(shadow) and bool(live == shadow)


def _brief(value: Any) -> Any:
    """The value itself, or `<first characters of its JSON…>` when that is long."""
    if isinstance(value, dict | list):
        text = json.dumps(value)
        if len(text) > MAX_VALUE_CHARS:
            return f"<{text[:MAX_VALUE_CHARS]}…>"
    elif isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return f"<{json.dumps(value)[:MAX_VALUE_CHARS]}…>"
    return value
