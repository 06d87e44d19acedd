"""How a replica of a fleet starts: the table from the store, or from the cache on disk.

`open_store` reads the routes key and validates it (`parse_table`), and caches the text
(`--store-cache`, written atomically: `write_cache`, also on every later apply). When the store
cannot be reached, holds no table or an invalid one, the cached text is served instead and
`/-/routes` says so (`"source": "cache"`); with no usable cache the proxy does not start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from proxy.routing.edit import write_atomically
from proxy.routing.model import RoutesError, RouteTable
from proxy.routing.parser import parse_table
from proxy.routing.store import RouteStore, StoreError, StoreUrl, parse_store_url
from proxy.settings import Settings

log = logging.getLogger("strangler.fleet")

STORE_TIMEOUT = 2.0  # one store request; a watch with no news for a few times this is dead
SOURCE_STORE = "store"
SOURCE_CACHE = "cache"


def table_source(url: StoreUrl) -> str:
    """How errors in the stored table name it (its key): `/strangler/routes:3: message`."""
    return f"{url.prefix}/routes"


def parse_text(text: str, source: str, max_bytes: int) -> RouteTable:
    """The table of `text`; RoutesError (as for a file) when it is invalid or over `max_bytes`."""
    if len(text.encode("utf-8")) > max_bytes:
        raise RoutesError((f"{source}: the table is over {max_bytes} bytes; refused",))
    return parse_table(text, source)


class FleetError(Exception):
    """The replica cannot start: the store is unreachable (or empty) and nothing is cached."""


@dataclass(frozen=True)
class Start:
    """What a replica starts from: the store's client, the table and where it came from."""

    store: RouteStore
    url: StoreUrl
    table: RouteTable
    text: str
    revision: int  # of the routes key; 0 when the table came from the cache
    source: str  # SOURCE_STORE or SOURCE_CACHE
    cache_error: str | None = None  # why the store could not be read, when from the cache


async def open_store(settings: Settings) -> Start:
    """Read and validate the table from the store; unreachable or empty: from the cache."""
    assert settings.store is not None
    try:
        url = parse_store_url(settings.store)
    except ValueError as exc:
        raise FleetError(f"--store: {exc}") from exc
    store = RouteStore(url, timeout=STORE_TIMEOUT)
    try:
        return await _first_table(settings, store, url)
    except BaseException:
        await store.close()
        raise


async def _first_table(settings: Settings, store: RouteStore, url: StoreUrl) -> Start:
    source = table_source(url)
    try:
        latest = await store.read()
    except StoreError as exc:
        problem = f"the store is unreachable ({exc})"
    else:
        if latest.text is not None:
            try:
                table = await asyncio.to_thread(
                    parse_text, latest.text, source, settings.max_routes_bytes
                )
            except RoutesError as exc:
                problem = "the stored table is invalid: " + "; ".join(exc.errors)
            else:
                write_cache(settings.store_cache, latest.text)
                return Start(store, url, table, latest.text, latest.revision, SOURCE_STORE)
        else:
            problem = f"the store holds no table at {url.prefix}/routes (strangler store push)"
    cached = read_cache(settings.store_cache)
    if cached is None:
        raise FleetError(f"cannot start: {problem}, and no --store-cache to serve from")
    try:
        table = await asyncio.to_thread(
            parse_text, cached, str(settings.store_cache), settings.max_routes_bytes
        )
    except RoutesError as exc:
        raise FleetError(f"cannot start: {problem}; the cache is invalid: {exc}") from exc
    log.warning("%s: serving the cached table from %s", problem, settings.store_cache)
    return Start(store, url, table, cached, 0, SOURCE_CACHE, problem)


def read_cache(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_cache(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        write_atomically(path, text)
    except OSError as exc:  # a full disk must not stop the replica from applying the table
        log.warning("could not write the store cache %s: %s", path, exc)
