"""The legacy Flask API gateway: resources as dictionaries, merged from the source systems.

Run it with ``gunicorn 'legacy_flask:create_app()'``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, request

from legacy_flask import errors, views
from legacy_flask.sources import Sources

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
    app.extensions["legacy_flask.sources"] = Sources(urls, app.config["SOURCE_TIMEOUT"])
    configure_logging(app)
    app.before_request(check_key)
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


def check_key() -> Response | None:
    if request.headers.get("X-Application-Key") not in current_app.config["API_KEYS"]:
        return errors.error_response(401)
    return None


def log_request_id(response: Response) -> Response:
    request_id = request.headers.get("X-Request-ID")
    if request_id is not None:
        log.info(
            "%s %s %s request_id=%s", request.method, request.path, response.status_code, request_id
        )
    return response
