"""A fake source system: a real HTTP server on loopback, serving records from memory.

It speaks the source systems' protocol (GET one, GET a page with filters and `ids=`, POST,
PUT, PATCH) and records every request, or answers `garbage` instead when told to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Records = dict[str, dict[int, dict[str, Any]]]


@dataclass
class FakeSource:
    collections: Records
    garbage: tuple[int, bytes] | None = None
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, target: str, body: Any) -> tuple[int, Any]:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        self.seen.append((method, parts.path, query))
        segments = parts.path.strip("/").split("/")
        records = self.collections.get(segments[0])
        if records is None:
            return 404, {"error": "not found"}
        if len(segments) == 1:
            return self.collection(method, records, query, body)
        pk = int(segments[1])
        if pk not in records:
            return 404, {"error": "not found"}
        if method == "PUT":
            records[pk] = {**body, "id": pk}
        elif method == "PATCH":
            records[pk] = {**records[pk], **body}
        return 200, records[pk]

    def collection(
        self, method: str, records: dict[int, dict[str, Any]], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if method == "POST":
            pk = max(records, default=0) + 1
            records[pk] = {**body, "id": pk}
            return 201, records[pk]
        items = [records[pk] for pk in sorted(records)]
        if "ids" in query:
            wanted = {int(pk) for pk in query["ids"].split(",")}
            items = [item for item in items if item["id"] in wanted]
        for name, value in query.items():
            if name not in ("ids", "offset", "limit"):
                items = [item for item in items if str(item.get(name)) == value]
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
        return 200, {"count": len(items), "items": items[offset : offset + limit]}


def _handler(source: FakeSource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = source.answer(self.command, self.path, body)
            payload = json.dumps(answer).encode()
            if source.garbage is not None:
                status, payload = source.garbage
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = handle_any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(source: FakeSource) -> Iterator[FakeSource]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(source))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    source.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield source
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
