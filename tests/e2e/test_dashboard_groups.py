"""A group on the dashboard, in a real headless Chromium against a real proxy process: the group
with its members' backends, its flip and its rollback after a confirmation (the file, the proxy
and the page follow; one audit row naming the group, by the token's user)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.fakes import ADMIN_TOKEN, Proxy, fake_backends, proxy_process, routes_text, send
from tests.support import ROOT
from tests.support.browser import Chromium

ARTIFACTS = ROOT / "artifacts"
RESOURCES = {"bookings": "legacy", "customers": "legacy", "tours": "drf"}
GROUPS = "groups:\n  reservations: [bookings, customers]\n"
pytestmark = pytest.mark.e2e


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    async with fake_backends("legacy", "drf") as urls:
        routes = tmp_path / "routes.yaml"
        routes.write_text(routes_text(urls, "legacy", RESOURCES) + GROUPS)
        with proxy_process(routes, tmp_path / "proxy.log") as running:
            yield running


def texts(selector: str) -> str:
    return f"[...document.querySelectorAll({json.dumps(selector)})].map(n => n.textContent)"


async def click(browser: Chromium, selector: str) -> None:
    await browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


async def confirm(browser: Chromium, text: str) -> None:
    await browser.wait_for("!document.getElementById('confirm').hidden")
    assert await browser.evaluate("document.getElementById('confirm-text').textContent") == text
    await click(browser, "#confirm-yes")


async def test_the_dashboard_flips_and_rolls_back_a_group(proxy: Proxy) -> None:
    original = proxy.routes.read_text()
    async with Chromium.start(width=1280, height=1000) as browser:
        await browser.navigate(f"{proxy.admin_url}/-/")
        await browser.wait_for("document.body.dataset.loaded === 'true'")
        assert await browser.evaluate("document.getElementById('groups-section').hidden") is False
        assert await browser.evaluate(texts("#groups tbody tr th")) == ["reservations"]
        member = "#groups tr[data-group='reservations'] .member"
        assert await browser.evaluate(texts(member)) == ["bookings legacy", "customers legacy"]
        assert await browser.evaluate(texts("#resources .group-tag")) == [
            "group reservations", "group reservations", ""
        ]  # fmt: skip
        await browser.evaluate(
            f"document.getElementById('token').value = {json.dumps(ADMIN_TOKEN)};"
            "document.getElementById('reason').value = 'group e2e';"
            "document.getElementById('token-form').requestSubmit()"
        )

        await click(browser, "#groups button[data-action='flip-group']")
        await confirm(browser, "Flip every member of group reservations to drf?")
        await browser.wait_for(f"{texts(member)}.join() === 'bookings drf,customers drf'")
        assert await browser.evaluate("document.getElementById('notice').textContent") == (
            "flip: group reservations: bookings legacy → drf, customers legacy → drf"
        )
        await browser.wait_for(
            "document.querySelector('#audit tbody tr td:nth-child(3)')?.textContent"
            " === 'group reservations'"
        )
        first = await browser.evaluate(texts("#audit tbody tr:first-child td"))
        assert first[1:] == [
            "flip", "group reservations", "bookings: legacy → drfcustomers: legacy → drf",
            "admin", "group e2e",
        ]  # fmt: skip
        assert await send(proxy, "/customers/1", 2) == ["drf", "drf"]
        await browser.screenshot(ARTIFACTS / "dashboard-groups.png")

        await click(browser, "#groups button[data-action='rollback-group']")
        await confirm(
            browser,
            "Roll back group reservations: each member to its backend before the group's "
            "last flip?",
        )
        await browser.wait_for(f"{texts(member)}.join() === 'bookings legacy,customers legacy'")
        assert proxy.routes.read_text() == original
        assert await send(proxy, "/bookings/1", 2) == ["legacy", "legacy"]
        lines = (proxy.routes.parent / "routes.audit.jsonl").read_text().splitlines()
        entries = [json.loads(line) for line in lines]
        assert [(e["action"], e["group"], e["user"], sorted(e["members"])) for e in entries] == [
            ("flip", "reservations", "admin", ["bookings", "customers"]),
            ("rollback", "reservations", "admin", ["bookings", "customers"]),
        ]
        assert browser.dialogs == []
        assert browser.page_errors() == []
