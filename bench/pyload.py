"""A Python load generator, used only when wrk cannot be installed.

`python -m bench.pyload URL CONNECTIONS SECONDS` prints one JSON Result. It runs in its own
process (so it does not share a core's event loop with what it measures): N keep-alive
connections, each sending the next GET as soon as the previous response is complete.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from urllib.parse import urlsplit

from bench.load import Result


async def _connection(host: str, port: int, path: str, until: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    errors = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        errors += not head.startswith(b"HTTP/1.1 2")
    writer.close()
    return errors


async def run(url: str, connections: int, seconds: float) -> Result:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    started = time.perf_counter()
    until = started + seconds
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    errors = await asyncio.gather(
        *(_connection(host, port, path, until, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * fraction))] * 1000

    return Result(len(latencies) / elapsed, percentile(0.5), percentile(0.99), sum(errors))


if __name__ == "__main__":
    url, connections, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asdict(asyncio.run(run(url, connections, seconds)))))
