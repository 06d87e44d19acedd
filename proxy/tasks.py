"""Background tasks with one owner: started, cancelled and their failures logged in one place.

A timer, a watcher or a worker pool runs as asyncio tasks for as long as the thing that owns
them. `Tasks` is that owner's handle: `start` names and starts a task, a task that ends with an
exception is logged at once (with its traceback, never left to "Task exception was never
retrieved"), and `close` cancels every task it started and waits for them. Imports nothing from
the proxy, so every package may use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("strangler.tasks")


class Tasks:
    """The background tasks of one owner; failures go to `logger`."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._running: list[asyncio.Task[Any]] = []

    def start(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `work` in the background until it returns or `close` cancels it."""
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._finished)
        self._running.append(task)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._log.error("background task %r failed", task.get_name(), exc_info=error)

    async def close(self) -> None:
        """Cancel every task started here and wait until they have all ended."""
        running, self._running = self._running, []
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
