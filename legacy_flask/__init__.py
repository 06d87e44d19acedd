"""The legacy Flask API gateway: resources as dictionaries, merged from the source systems.

Run it with ``gunicorn 'legacy_flask:create_app()'``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request

from legacy_flask import errors, formats, views
from legacy_flask.auth import Introspector, check_credentials
from legacy_flask.dryrun import check_dry_run
from legacy_flask.sources import Sources
from proxy.dryrun import SECRET_VARIABLE

log = logging.getLogger("legacy_flask")
SOURCE_SYSTEMS = ("reservations", "crm", "operations")


def config_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    keys = environ.get("API_KEYS", "demo")
    return {
        "RESERVATIONS_URL": environ.get("RESERVATIONS_URL", "http://127.0.0.1:5101"),
        "CRM_URL": environ.get("CRM_URL", "http://127.0.0.1:5102"),
        "OPERATIONS_URL": environ.get("OPERATIONS_URL", "http://127.0.0.1:5103"),
        "API_KEYS": frozenset(key.strip() for key in keys.split(",") if key.strip()),
        "SOURCE_TIMEOUT": float(environ.get("SOURCE_TIMEOUT", "5")),
        # The dry-run key shared with the proxy and the source systems; None refuses dry runs.
        "SHADOW_SECRET": environ.get(SECRET_VARIABLE) or None,
        # OAuth 2 (auth.py): the auth system, our credential at its introspection endpoint,
        # and how long an introspection answer is reused (seconds).
        "AUTH_URL": environ.get("AUTH_URL", "http://127.0.0.1:5104"),
        "AUTH_CLIENT_ID": environ.get("AUTH_CLIENT_ID", "gateway"),
        "AUTH_CLIENT_SECRET": environ.get("AUTH_CLIENT_SECRET", "gateway-secret"),
        "TOKEN_CACHE_SECONDS": float(environ.get("TOKEN_CACHE_SECONDS", "30")),
        # Tests only: the creation time every new record gets ("2026-11-28T10:00:00Z"), so two
        # worlds given the same writes store the same bytes. Unset: the clock.
        "DEMO_NOW": environ.get("STRANGLER_DEMO_NOW") or None,
    }


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(config_from_env(os.environ))
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    urls = {
        name: app.config[f"{name.upper()}_URL"] for name in ("reservations", "crm", "operations")
    }
    app.extensions["legacy_flask.sources"] = Sources(
        urls, app.config["SOURCE_TIMEOUT"], shadow_secret=app.config["SHADOW_SECRET"]
    )
    app.extensions["legacy_flask.auth"] = Introspector(
        app.config["AUTH_URL"],
        app.config["AUTH_CLIENT_ID"],
        app.config["AUTH_CLIENT_SECRET"],
        app.config["SOURCE_TIMEOUT"],
        app.config["TOKEN_CACHE_SECONDS"],
    )
    configure_logging(app)
    # The dry-run check before the token or key check: a forged dry run never gets any further.
    app.before_request(check_dry_run)
    app.before_request(check_credentials)
    app.before_request(check_format)
    app.after_request(log_request_id)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    return app


def configure_logging(app: Flask) -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def check_format() -> Response | None:
    """``?format=`` naming no format of the API (``json``, ``xml``): 404, after the key check."""
    if formats.unknown_format(request.args.get("format")):
        return errors.error_response(404)
    return None


def log_request_id(response: Response) -> Response:
    request_id = request.headers.get("X-Request-ID")
    if request_id is not None:
        log.info(
            "%s %s %s request_id=%s", request.method, request.path, response.status_code, request_id
        )
    return response
