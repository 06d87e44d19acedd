"""A headless Chromium driven over the Chrome DevTools Protocol (aiohttp's websocket client).

    async with Chromium.start() as browser:
        await browser.navigate("http://127.0.0.1:8081/-/")
        await browser.wait_for("document.body.dataset.loaded === 'true'")
        title = await browser.evaluate("document.title")
        await browser.screenshot(Path("artifacts/page.png"))

Debian's /usr/bin/chromium; a missing browser is an error (tests fail, never skip). Every wait
is bounded; leaving the block kills the browser and removes its profile directory.
JavaScript dialogs (alert/confirm) are answered with `dialog_answer` (accept by default) and
recorded in `dialogs`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    pass


class Chromium:
    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        profile: Path,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
    ) -> None:
        self.proc = proc
        self.profile = profile
        self.http = http
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.event_arrived = asyncio.Event()
        self.dialogs: list[str] = []
        self.dialog_answer = True
        self.session_id: str | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, *, width: int = 1280, height: int = 900, timeout: float = 30.0
    ) -> AsyncIterator[Chromium]:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise BrowserError("chromium is not installed (Debian: apt-get install chromium)")
        profile = Path(tempfile.mkdtemp(prefix="strangler-chromium-"))
        log = open(profile / "chromium.log", "wb")
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        browser: Chromium | None = None
        try:
            port, path = await _devtools_address(proc, profile, timeout)
            http = aiohttp.ClientSession()
            try:
                ws = await http.ws_connect(
                    f"ws://127.0.0.1:{port}{path}",
                    max_msg_size=0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                )
            except BaseException:
                await http.close()
                raise
            browser = cls(proc, profile, http, ws)
            await browser._open_page(width, height)
            yield browser
        finally:
            if browser is not None:
                await browser._close()
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            log.close()
            shutil.rmtree(profile, ignore_errors=True)

    # -- protocol ------------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        browser_level: bool = False,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """One CDP command (to the page's session unless `browser_level`); its result."""
        message: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params or {}}
        if not browser_level and self.session_id is not None:
            message["sessionId"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[message["id"]] = future
        await self.ws.send_str(json.dumps(message))
        try:
            answer = await asyncio.wait_for(future, timeout)
        finally:
            self.waiting.pop(message["id"], None)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self.waiting.get(data["id"])
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            self.events.append(data)
            self.event_arrived.set()
            if data.get("method") == "Page.javascriptDialogOpening":
                self.dialogs.append(data["params"].get("message", ""))
                asyncio.create_task(
                    self.send("Page.handleJavaScriptDialog", {"accept": self.dialog_answer})
                )
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(BrowserError("the browser closed the connection"))

    async def wait_event(
        self, method: str, *, since: int = 0, timeout: float = 15.0
    ) -> dict[str, Any]:
        """The first event named `method` at index >= `since` of `events`."""
        deadline = time.monotonic() + timeout
        while True:
            self.event_arrived.clear()
            for event in self.events[since:]:
                if event.get("method") == method:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {method} event within {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event_arrived.wait(), remaining)

    async def _open_page(self, width: int, height: int) -> None:
        target = await self.send("Target.createTarget", {"url": "about:blank"}, browser_level=True)
        attached = await self.send(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            browser_level=True,
        )
        self.session_id = attached["sessionId"]
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Log.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close", browser_level=True), 5)
        await self.ws.close()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await self.http.close()

    def page_errors(self) -> list[str]:
        """Uncaught exceptions, and console or browser log entries of level error other than
        failed network loads (a test may provoke those), e.g. Content-Security-Policy
        violations."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"].get("exception", params)))
            elif event.get("method") == "Log.entryAdded":
                entry = params["entry"]
                if entry["level"] == "error" and entry.get("source") != "network":
                    found.append(f"{entry.get('source')}: {entry['text']}")
            elif event.get("method") == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(f"console.error: {params['args']}")
        return found

    # -- page helpers --------------------------------------------------------------------------

    async def navigate(self, url: str, *, timeout: float = 15.0) -> None:
        since = len(self.events)
        answer = await self.send("Page.navigate", {"url": url}, timeout=timeout)
        if answer.get("errorText"):
            raise BrowserError(f"navigate {url}: {answer['errorText']}")
        await self.wait_event("Page.loadEventFired", since=since, timeout=timeout)

    async def evaluate(self, expression: str, *, timeout: float = 15.0) -> Any:
        """The value of a JavaScript expression (promises awaited); page exceptions raise."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression!r} raised: {text}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 15.0) -> Any:
        """Poll `expression` until it is truthy; its value. TimeoutError with the last value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{expression!r} still {value!r} after {timeout}s")

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the viewport)."""
        answer = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(answer["data"]))
        return path


async def _devtools_address(
    proc: subprocess.Popen[bytes], profile: Path, timeout: float
) -> tuple[int, str]:
    """Port and browser websocket path from the DevToolsActivePort file chromium writes."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
            raise BrowserError(f"chromium exited with {proc.returncode}:\n{log}")
        with contextlib.suppress(FileNotFoundError):
            lines = marker.read_text().splitlines()
            if len(lines) >= 2:
                return int(lines[0]), lines[1]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"chromium wrote no DevToolsActivePort within {timeout}s")
