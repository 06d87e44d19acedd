"""Settings of the DRF gateway, read once from the environment.

Deliberately minimal: no database, no installed apps, one tiny middleware. The request path is
URL resolution, one DRF view, the source systems and a JSON (or XML) renderer.
"""

from __future__ import annotations

import os

from proxy.dryrun import SECRET_VARIABLE


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
# The dry-run check comes first, before URL resolution and DRF's authentication (dryrun.py);
# then each request gets the process's token introspector (tokens.py).
MIDDLEWARE = [
    "drf_app.middleware.content_length",
    "drf_app.dryrun.dry_runs",
    "drf_app.tokens.introspection",
]
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
# The dry-run key shared with the proxy and the source systems; None refuses every dry run.
SHADOW_SECRET = os.environ.get(SECRET_VARIABLE) or None
# OAuth 2 (auth.py, tokens.py): the auth system, the gateway's own credential at its
# introspection endpoint (seeded there), and how long an introspection answer is reused.
AUTH_URL = os.environ.get("AUTH_URL", "http://127.0.0.1:5104")
AUTH_CLIENT_ID = os.environ.get("AUTH_CLIENT_ID", "gateway")
AUTH_CLIENT_SECRET = os.environ.get("AUTH_CLIENT_SECRET", "gateway-secret")
TOKEN_CACHE_SECONDS = float(os.environ.get("TOKEN_CACHE_SECONDS", "30"))
# Tests only: the creation time every new record gets ("2026-11-28T10:00:00Z"), so two worlds
# given the same writes store the same bytes. None: the clock.
DEMO_NOW = os.environ.get("STRANGLER_DEMO_NOW") or None

REST_FRAMEWORK = {
    # JSON first: the default, and what a request that asks for nothing servable gets.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "drf_app.renderers.XMLRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "drf_app.parsers.XMLParser"],
    # The Bearer token first: when there is one, it decides alone (auth.py).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "drf_app.auth.BearerTokenAuthentication",
        "drf_app.auth.ApplicationKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["drf_app.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "drf_app.negotiation.JSONFirst",
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
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        # Refused dry runs, with the reason (never the secret).
        "drf_app": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
