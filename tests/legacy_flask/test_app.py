"""The app factory and the answers that never reach a source system (Flask's test client)."""

import pytest
import requests

from legacy_flask import create_app
from legacy_flask.sources import Sources
from tests.support.contract import assert_conforms, load_spec

KEY = {"X-Application-Key": "demo"}
UNAUTHORIZED = {
    "http_status_code": 401,
    "message": "Missing or invalid X-Application-Key.",
    "errors": [],
}
NOT_FOUND = {"http_status_code": 404, "message": "Not found.", "errors": []}


@pytest.fixture
def client():
    app = create_app({"API_KEYS": frozenset({"demo", "other"})})
    yield app.test_client()
    app.extensions["legacy_flask.sources"].close()


def test_config_from_environment(monkeypatch):
    monkeypatch.setenv("RESERVATIONS_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("API_KEYS", " a, b ,,")
    monkeypatch.setenv("SOURCE_TIMEOUT", "0.5")
    app = create_app()
    sources = app.extensions["legacy_flask.sources"]
    assert isinstance(sources, Sources)
    assert isinstance(sources.session, requests.Session)
    assert sources.urls["reservations"] == "http://127.0.0.1:1"
    assert sources.urls["crm"] == "http://127.0.0.1:5102"
    assert sources.timeout == 0.5
    assert app.config["API_KEYS"] == frozenset({"a", "b"})
    assert create_app().extensions["legacy_flask.sources"] is not sources


@pytest.mark.parametrize("path", ["/", "/bookings", "/nope", "/bookings/1"])
@pytest.mark.parametrize("headers", [{}, {"X-Application-Key": "wrong"}])
def test_key_checked_first_on_every_path(client, path, headers):
    response = client.delete(path, headers=headers)
    assert response.status_code == 401
    assert response.content_type == "application/json"
    assert response.get_json() == UNAUTHORIZED
    assert_conforms(load_spec(), "DELETE", path, 401, response.get_json())


def test_any_listed_key_is_accepted(client):
    assert client.get("/nope", headers={"X-Application-Key": "other"}).status_code == 404


@pytest.mark.parametrize(
    "path", ["/", "/nope", "/bookings/0", "/bookings/x", "/bookings//1", "/tours/1/2", "/a/b/c/d/e"]
)
def test_not_found(client, path):
    response = client.get(path, headers=KEY)
    assert (response.status_code, response.get_json()) == (404, NOT_FOUND)
    assert response.content_type == "application/json"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/bookings/1"),
        ("DELETE", "/bookings"),
        ("POST", "/tours"),
        ("POST", "/tours/resource"),
        ("PUT", "/tours/1"),
        ("PATCH", "/departures/1/"),
        ("POST", "/bookings/1"),
        ("PUT", "/bookings"),
        ("POST", "/tours/1/departures"),
        ("PUT", "/itineraries/1/2"),
        ("PATCH", "/itineraries/1/2/itinerary_maps"),
    ],
)
def test_method_not_allowed(client, method, path):
    response = client.open(path, method=method, headers=KEY)
    assert response.status_code == 405
    assert response.get_json() == {
        "http_status_code": 405,
        "message": f'Method "{method}" not allowed.',
        "errors": [],
    }
    if not path.endswith("/resource"):  # a legacy quirk, not part of the contract
        assert_conforms(load_spec(), method, path, 405, response.get_json())


def test_unknown_method_is_405(client):
    response = client.open("/bookings", method="BREW", headers=KEY)
    assert response.status_code == 405
    assert response.get_json()["message"] == 'Method "BREW" not allowed.'


def test_options_lists_allowed_methods(client):
    response = client.options("/bookings/", headers=KEY)
    assert response.status_code == 200
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert client.options("/tours/1", headers=KEY).headers["Allow"] == "GET, HEAD, OPTIONS"


def test_source_down_is_502(client):
    app = create_app({"RESERVATIONS_URL": "http://127.0.0.1:9", "SOURCE_TIMEOUT": 1})
    response = app.test_client().get("/bookings/1", headers=KEY)
    assert response.status_code == 502
    assert response.get_json() == {
        "http_status_code": 502,
        "message": "A source system is unavailable.",
        "errors": [],
    }
    assert b"127.0.0.1" not in response.data


@pytest.mark.parametrize("path", ["/nowhere", "/bookings/0", "/tours/1/bookings", "//bookings"])
@pytest.mark.parametrize("method", ["BREW", "TRACE", "DELETE", "OPTIONS", "GET"])
def test_any_method_on_an_unknown_path_is_404(client, method, path):
    response = client.open(path, method=method, headers=KEY)
    assert (response.status_code, response.get_json()) == (404, NOT_FOUND)
    assert "Allow" not in response.headers


def test_unknown_method_on_a_known_path_names_the_allowed_ones(client):
    response = client.open("/bookings/3/", method="TRACE", headers=KEY)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, PUT, PATCH"


def test_options_names_the_resource_and_its_methods(client):
    response = client.options("/tours/1/departures", headers=KEY)
    assert response.status_code == 200
    assert response.get_json() == {"name": "departures", "methods": ["GET", "HEAD", "OPTIONS"]}
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.headers["Content-Type"] == "application/json"


def test_normal_answers_carry_no_allow(client):
    assert "Allow" not in client.post("/bookings", data=b"[]", headers=KEY).headers
