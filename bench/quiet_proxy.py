"""`python -m bench.quiet_proxy serve …`: the proxy with the admin side's samplers stopped, for
`bench routing`.

The dashboard (every second) and the lifecycle (every five) sample the metrics on timers, work
that grows with the table and is paid per second, not per request. Under callgrind, which slows
the proxy some fifty times, it would land on each request fifty times over and hide what the
table costs a request. Here both samplers do nothing; everything else is `python -m proxy`.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

from aiohttp import web

from proxy import cli
from proxy.control import dashboard, lifecycle


async def _no_sampling(app: web.Application) -> AsyncIterator[None]:
    yield


def main() -> int:
    dashboard._sampling = _no_sampling  # read by add_dashboard
    lifecycle._sampling = _no_sampling  # read by add_lifecycle
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
