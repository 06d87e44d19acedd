"""The legacy gateway's dry-run plumbing: the secret read once into the config, and the sources'
dry-run copy signing every call it makes (both gateways' dry runs, end to end:
tests/parity/test_dry_run.py)."""

from __future__ import annotations

import time

from legacy_flask import config_from_env, create_app
from proxy.dryrun import SECRET_VARIABLE, SHADOW_HEADER, SIGNATURE_HEADER, verify


def test_the_secret_is_read_once_into_the_config_and_handed_to_the_sources() -> None:
    app = create_app({"SHADOW_SECRET": "s3cret"})
    sources = app.extensions["legacy_flask.sources"]
    assert config_from_env({SECRET_VARIABLE: "k3y"})["SHADOW_SECRET"] == "k3y"
    assert config_from_env({SECRET_VARIABLE: ""})["SHADOW_SECRET"] is None
    assert sources.headers("GET", "/bookings/1", None) == {}
    dry = sources.dry_run()
    assert dry.session is sources.session
    headers = dry.headers("PATCH", "/bookings/1?x=1", b'{"a": 1}')
    assert headers["Content-Type"] == "application/json"
    shadow, signature = headers[SHADOW_HEADER], headers[SIGNATURE_HEADER]
    target, body = "/bookings/1?x=1", b'{"a": 1}'
    assert verify("s3cret", shadow, signature, "PATCH", target, body, time.time()) is None
    sources.close()
