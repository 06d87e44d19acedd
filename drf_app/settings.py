"""Settings of the DRF gateway, read once from the environment.

Deliberately minimal: no database, no installed apps, one tiny middleware. The request path is
URL resolution, one DRF view, the source systems and a JSON renderer.
"""

from __future__ import annotations

import os


def parse_faults(raw: str) -> dict[str, int]:
    """`"bookings=500, tours=503"` -> `{"bookings": 500, "tours": 503}`; "" -> `{}`.

    >>> parse_faults("bookings=500, tours=503")
    {'bookings': 500, 'tours': 503}
    """
    faults: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        resource, _, status = item.partition("=")
        if not resource.strip() or not status.strip().isdigit():
            raise ValueError(f"STRANGLER_DRF_FAULTS: expected resource=status, got {item!r}")
        code = int(status)
        if not 400 <= code <= 599:
            raise ValueError(f"STRANGLER_DRF_FAULTS: {code} is not a status from 400 to 599")
        faults[resource.strip()] = code
    return faults


def _keys(raw: str) -> frozenset[str]:
    return frozenset(key.strip() for key in raw.split(",") if key.strip())


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "strangler-drf-gateway-signs-nothing")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "drf_app.urls"
WSGI_APPLICATION = "drf_app.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["drf_app.middleware.content_length"]
DATABASES: dict[str, dict[str, str]] = {}
USE_I18N = False
USE_TZ = True
TIME_ZONE = "UTC"

RESERVATIONS_URL = os.environ.get("RESERVATIONS_URL", "http://127.0.0.1:5101")
CRM_URL = os.environ.get("CRM_URL", "http://127.0.0.1:5102")
OPERATIONS_URL = os.environ.get("OPERATIONS_URL", "http://127.0.0.1:5103")
API_KEYS = _keys(os.environ.get("API_KEYS", "demo"))
SOURCE_TIMEOUT = float(os.environ.get("SOURCE_TIMEOUT", "5"))
# Test / game-day switch: "bookings=500,tours=503" fails those resources on purpose (faults.py).
FAULTS = parse_faults(os.environ.get("STRANGLER_DRF_FAULTS", ""))

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["drf_app.auth.ApplicationKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["drf_app.auth.HasApplicationKey"],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "drf_app.negotiation.JSONOnly",
    "DEFAULT_VERSIONING_CLASS": None,
    "UNAUTHENTICATED_USER": None,
    "UNAUTHENTICATED_TOKEN": None,
    "EXCEPTION_HANDLER": "drf_app.errors.exception_handler",
    # Clients must not notice which stack served them, down to the bytes: write JSON the way
    # the legacy gateway does (json.dumps defaults: ", " and ": " separators, ASCII escapes).
    "COMPACT_JSON": False,
    "UNICODE_JSON": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}
