"""The dashboard in a real headless Chromium, against a real proxy process and fake backends.

The page must list every resource with its backend and live traffic, take the admin token from
the operator, flip a resource after a confirmation (the file, the proxy and the page all follow)
and show the API's errors. Screenshots land in artifacts/ (dashboard.png, dashboard-error.png).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from proxy.clock import iso_time
from tests.e2e.fakes import ADMIN_TOKEN, Proxy, fake_backends, proxy_process, routes_text, send
from tests.support import ROOT, fleet
from tests.support.browser import Chromium

ARTIFACTS = ROOT / "artifacts"
RESOURCES = {"bookings": "legacy", "customers": "legacy", "tours": "drf"}
PATHS = ("/bookings/1", "/tours", "/bookings/2", "/tours")
pytestmark = pytest.mark.e2e


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    async with fake_backends("legacy", "drf") as urls:
        routes = tmp_path / "routes.yaml"
        routes.write_text(routes_text(urls, "legacy", RESOURCES))
        with proxy_process(routes, tmp_path / "proxy.log") as running:
            yield running


def cell(resource: str, name: str) -> str:
    return f"document.querySelector('tr[data-resource=\"{resource}\"] .c-{name}').textContent"


async def click(browser: Chromium, selector: str) -> None:
    await browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


@contextlib.asynccontextmanager
async def background_load(proxy: Proxy) -> AsyncIterator[None]:
    """Steady traffic while the page is open; one tours request in four is answered 503."""

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            for i in range(100_000):
                path = "/tours/fail" if i % 8 == 7 else PATHS[i % 4]
                async with session.get(f"{proxy.url}{path}") as response:
                    await response.read()
                await asyncio.sleep(0.03)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_dashboard_shows_traffic_and_flips_a_resource(proxy: Proxy) -> None:
    assert await send(proxy, "/bookings/1", 12) == ["legacy"] * 12
    assert await send(proxy, "/tours", 6) == ["drf"] * 6

    async with Chromium.start(width=1280, height=1000) as browser, background_load(proxy):
        await browser.navigate(f"{proxy.admin_url}/-/")
        await browser.wait_for("document.body.dataset.loaded === 'true'")
        assert await browser.evaluate("document.title") == "strangler · dashboard"
        rows = await browser.evaluate(
            "[...document.querySelectorAll('#resources tbody tr')].map(r => r.dataset.resource)"
        )
        assert rows == ["bookings", "customers", "tours", "other"]
        for resource, backend in RESOURCES.items():
            assert await browser.evaluate(cell(resource, "backend")) == backend
        assert await browser.evaluate(cell("other", "backend")) == "legacy"
        # the requests sent above show as live rates, per resource and per backend
        assert await browser.evaluate(cell("bookings", "rate")) != "0.0"
        assert await browser.evaluate(cell("customers", "rate")) == "0.0"
        cards = await browser.evaluate(
            "[...document.querySelectorAll('#backends .card')].map(c => c.dataset.backend)"
        )
        assert cards == ["legacy", "drf"]
        assert await browser.evaluate(
            "document.querySelector('[data-backend=\"drf\"] .f-p99').textContent.endsWith(' ms')"
        )
        assert await browser.evaluate("document.querySelectorAll('svg.spark').length") == 6
        assert await browser.evaluate("document.getElementById('audit-empty').hidden") is False

        # the operator types the token; it stays in the tab, not in the page
        await browser.evaluate(
            f"document.getElementById('token').value = {json.dumps(ADMIN_TOKEN)};"
            "document.getElementById('reason').value = 'browser e2e';"
            "document.getElementById('token-form').requestSubmit()"
        )
        assert await browser.evaluate("sessionStorage.getItem('strangler.adminToken')") == (
            ADMIN_TOKEN
        )
        assert ADMIN_TOKEN not in await browser.evaluate("document.documentElement.outerHTML")

        # flip bookings to drf: a confirmation first, nothing changes before it
        assert (
            await browser.evaluate(
                "document.querySelector('tr[data-resource=\"bookings\"] select').value"
            )
            == "drf"
        )
        await click(browser, 'tr[data-resource="bookings"] button[data-action="flip"]')
        await browser.wait_for("!document.getElementById('confirm').hidden")
        assert await browser.evaluate("document.getElementById('confirm-text').textContent") == (
            "Flip bookings from legacy to drf?"
        )
        assert "bookings: legacy" in proxy.routes.read_text()
        await click(browser, "#confirm-yes")
        await browser.wait_for(f"{cell('bookings', 'backend')} === 'drf'")
        assert await browser.evaluate("document.getElementById('notice').textContent") == (
            "flip: bookings legacy → drf"
        )
        await browser.wait_for(
            "document.querySelector('#audit tbody tr td:nth-child(3)')?.textContent === 'bookings'"
        )
        first = await browser.evaluate(
            "[...document.querySelectorAll('#audit tbody tr:first-child td')]"
            ".map(td => td.textContent)"
        )
        assert first[1:] == ["flip", "bookings", "legacy → drf", "admin", "browser e2e"]
        # the charts have more than one step of history (the proxy has run for over 5 s)
        await browser.wait_for(
            "document.querySelector('[data-backend=\"drf\"] svg.spark path.line:not(.dot)')"
            " !== null",
            timeout=20,
        )
        await browser.screenshot(ARTIFACTS / "dashboard.png")

        text = proxy.routes.read_text()
        assert "  bookings: drf\n" in text and "  customers: legacy\n" in text
        audit = (proxy.routes.parent / "routes.audit.jsonl").read_text().splitlines()
        [entry] = [json.loads(line) for line in audit]
        assert (entry["resource"], entry["from"], entry["to"], entry["reason"]) == (
            "bookings", "legacy", "drf", "browser e2e"
        )  # fmt: skip
        assert await send(proxy, "/bookings/1", 3) == ["drf"] * 3

        # a wrong token: the API's refusal is shown and nothing changes
        await browser.evaluate(
            "document.getElementById('token').value = 'wrong';"
            "document.getElementById('token-form').requestSubmit()"
        )
        await click(browser, 'tr[data-resource="tours"] button[data-action="rollback"]')
        await browser.wait_for("!document.getElementById('confirm').hidden")
        await click(browser, "#confirm-yes")
        await browser.wait_for("!document.getElementById('error').hidden")
        assert await browser.evaluate("document.getElementById('error').textContent") == (
            "Unauthorized: send Authorization: Bearer <admin token>."
        )
        await browser.screenshot(ARTIFACTS / "dashboard-error.png")
        assert proxy.routes.read_text() == text
        assert browser.dialogs == []
        assert browser.page_errors() == []


async def test_the_dashboard_flips_through_the_store_and_every_replica_follows(
    tmp_path: Path, etcd_url: str
) -> None:
    """Two replicas of one etcd table: a flip made on one replica's dashboard is one store
    write, audited in the store, and both replicas route the new way."""
    async with fleet.fake_backends("legacy", "drf") as urls:
        await fleet.push(etcd_url, fleet.table_text(urls, RESOURCES))
        with fleet.replicas(tmp_path) as started:
            one = started.start(etcd_url, "one")
            two = started.start(etcd_url, "two")
            async with aiohttp.ClientSession() as session:
                for replica in (one, two):
                    await fleet.ready(session, replica)
            async with Chromium.start(width=1280, height=1000) as browser:
                await browser.navigate(f"{one.admin_url}/-/")
                await browser.wait_for("document.body.dataset.loaded === 'true'")
                assert await browser.evaluate(cell("bookings", "backend")) == "legacy"
                await browser.evaluate(
                    f"document.getElementById('token').value = {json.dumps(fleet.TOKEN)};"
                    "document.getElementById('reason').value = 'browser fleet';"
                    "document.getElementById('token-form').requestSubmit()"
                )
                await click(browser, 'tr[data-resource="bookings"] button[data-action="flip"]')
                await browser.wait_for("!document.getElementById('confirm').hidden")
                await click(browser, "#confirm-yes")
                await browser.wait_for(f"{cell('bookings', 'backend')} === 'drf'")
                assert await browser.evaluate("document.getElementById('notice').textContent") == (
                    "flip: bookings legacy → drf"
                )
                assert browser.page_errors() == []
            [entry] = [e for e in await fleet.audit(etcd_url) if e.get("action") == "flip"]
            assert (entry["resource"], entry["from"], entry["to"], entry["reason"]) == (
                "bookings", "legacy", "drf", "browser fleet"
            )  # fmt: skip
            async with aiohttp.ClientSession() as session:
                for replica in (one, two):

                    async def routed_to_drf(replica: fleet.Replica = replica) -> bool:
                        async with session.get(f"{replica.url}/bookings/1") as response:
                            return (await response.json())["backend"] == "drf"

                    await fleet.wait_for(routed_to_drf, 5, f"{replica.name} routes to drf")


def plan_text(resource: str, part: str) -> str:
    return (
        f"document.querySelector('tr[data-resource=\"{resource}\"] .c-rollout {part}').textContent"
    )


def shown(resource: str, action: str) -> str:
    selector = f'tr[data-resource="{resource}"] button[data-action="rollout-{action}"]'
    return f"!document.querySelector({json.dumps(selector)}).hidden"


async def test_the_dashboard_shows_a_rollout_and_pauses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running plan (an hour a step: the autopilot holds it) shows its step and time on step;
    Pause, once confirmed, pauses it in routes.yaml, in the audit log and on the page."""
    monkeypatch.setenv("STRANGLER_ROLLOUT_EVALUATE_EVERY", "3600")
    async with fake_backends("legacy", "drf") as urls:
        routes = tmp_path / "routes.yaml"
        plan = (
            "  bookings:\n    backend: legacy\n    shadow: {backend: drf}\n    rollout:\n"
            "      to: drf\n      steps: [shadow, 25, 100]\n      step_seconds: 3600\n"
            f'      state: running\n      step: 0\n      since: "{iso_time()}"\n'
        )
        routes.write_text(routes_text(urls, "legacy", {"customers": "legacy"}) + plan)
        with proxy_process(routes, tmp_path / "proxy.log") as proxy:
            async with Chromium.start(width=1400, height=1000) as browser:
                await browser.navigate(f"{proxy.admin_url}/-/")
                await browser.wait_for("document.body.dataset.loaded === 'true'")
                shown_text = plan_text("bookings", ".plan-text")
                pattern = "/^step 1\\/3 · shadow · \\d+s on step · $/"
                assert await browser.evaluate(f"{pattern}.test({shown_text})") is True
                assert await browser.evaluate(plan_text("bookings", ".state")) == "running"
                assert await browser.evaluate(shown("bookings", "pause")) is True
                assert await browser.evaluate(shown("bookings", "abort")) is True
                assert await browser.evaluate(shown("bookings", "resume")) is False
                assert await browser.evaluate(plan_text("customers", ".plan-text")) == "—"
                assert await browser.evaluate(plan_text("customers", ".state")) == ""
                assert await browser.evaluate(shown("customers", "pause")) is False

                await browser.evaluate(
                    f"document.getElementById('token').value = {json.dumps(ADMIN_TOKEN)};"
                    "document.getElementById('reason').value = 'hold it';"
                    "document.getElementById('token-form').requestSubmit()"
                )
                await click(
                    browser, 'tr[data-resource="bookings"] button[data-action="rollout-pause"]'
                )
                await browser.wait_for("!document.getElementById('confirm').hidden")
                assert await browser.evaluate(
                    "document.getElementById('confirm-text').textContent"
                ) == ("Pause the rollout of bookings (step 1/3 · shadow)?")
                assert "      state: running\n" in routes.read_text()
                await click(browser, "#confirm-yes")
                await browser.wait_for(f"{plan_text('bookings', '.state')} === 'paused'")
                assert await browser.evaluate("document.getElementById('notice').textContent") == (
                    "rollout-pause: bookings legacy → drf"
                )
                assert await browser.evaluate(shown("bookings", "pause")) is False
                assert await browser.evaluate(shown("bookings", "resume")) is True
                assert await browser.evaluate(shown("bookings", "abort")) is True
                await browser.wait_for(
                    "document.querySelector('#audit tbody tr td:nth-child(2)')?.textContent"
                    " === 'rollout-pause'"
                )
                await browser.screenshot(ARTIFACTS / "dashboard-rollout.png")
                assert browser.dialogs == []
                assert browser.page_errors() == []
        text = routes.read_text()
        assert "      state: paused\n      step: 0\n" in text
        audit = (tmp_path / "routes.audit.jsonl").read_text().splitlines()
        [entry] = [json.loads(line) for line in audit]
        assert (entry["action"], entry["resource"], entry["user"], entry["reason"]) == (
            "rollout-pause", "bookings", "admin", "hold it"
        )  # fmt: skip
