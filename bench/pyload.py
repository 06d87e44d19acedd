"""A Python load generator, used only when wrk cannot be installed.

`python -m bench.pyload URL CONNECTIONS SECONDS [--path P ...] [--header "Name: value" ...]`
prints one JSON Result. It runs in its own process (so it does not share a core's event loop
with what it measures): N keep-alive connections, each sending the next GET as soon as the
previous response is complete, cycling through the paths (default: the path of URL). A
connection the server closes is opened again.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from dataclasses import asdict
from urllib.parse import urlsplit

from bench.load import Result


async def _connection(
    host: str, port: int, requests: list[bytes], until: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    for request in itertools.cycle(requests):
        if time.perf_counter() >= until:
            break
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        closing = False
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            closing |= line.lower().replace(b" ", b"") == b"connection:close"
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        errors += not head.startswith(b"HTTP/1.1 2")
        if closing:
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    return errors


async def run(
    url: str, connections: int, seconds: float, paths: list[str], headers: list[str]
) -> Result:
    parts = urlsplit(url)
    paths = paths or [parts.path + (f"?{parts.query}" if parts.query else "")]
    latencies: list[float] = []
    started = time.perf_counter()
    until = started + seconds
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{header}\r\n" for header in headers)
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode() for path in paths
    ]
    errors = await asyncio.gather(
        *(_connection(host, port, requests, until, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * fraction))] * 1000

    rps = len(latencies) / elapsed
    return Result(rps, percentile(0.5), percentile(0.99), sum(errors), len(latencies))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pyload")
    parser.add_argument("url")
    parser.add_argument("connections", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.url, args.connections, args.seconds, args.path, args.header))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
