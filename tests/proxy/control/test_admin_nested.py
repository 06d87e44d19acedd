"""proxy.control.admin with a nested key: its name in the URL with `/` as %2F (as the dashboard
sends it, encodeURIComponent), flipped and rolled back, and the table reloaded at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient

from proxy.control.admin import make_admin_app
from tests.support.control import ROUTES, make_state, write

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NESTED = ROUTES.replace("  tours: drf\n", "  tours: drf\n  tours/*/departures: legacy\n")


async def test_flip_and_rollback_of_a_nested_key_over_http(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    state = make_state(write(tmp_path / "routes.yaml", NESTED), admin_token=TOKEN)
    client = await aiohttp_client(make_admin_app(state))
    url = "/-/routes/tours%2F*%2Fdepartures"
    response = await client.put(url, json={"backend": "drf"}, headers=AUTH)
    assert response.status == 200
    answer = await response.json()
    assert (answer["resource"], answer["from"], answer["to"]) == (
        "tours/*/departures",
        "legacy",
        "drf",
    )
    assert state.settings.routes.read_text() == NESTED.replace(
        "tours/*/departures: legacy", "tours/*/departures: drf"
    )
    assert state.table.match("GET", "/tours/1/departures").backend.name == "drf"
    response = await client.post(url + "/rollback", headers=AUTH)
    assert response.status == 200
    assert state.settings.routes.read_text() == NESTED
    assert state.table.match("GET", "/tours/1/departures").backend.name == "legacy"
    routes = await (await client.get("/-/routes")).json()
    assert routes["resources"]["tours/*/departures"]["backend"] == "legacy"
