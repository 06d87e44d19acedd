"""Clients authenticate with an `X-Application-Key` header holding one of `API_KEYS`.

DRF views check it through `ApplicationKeyAuthentication` + `HasApplicationKey`. URLs that
match no view never reach DRF: `errors.not_found` (Django's handler404) checks the key
itself, so an unknown path without a valid key is a 401 too, at no cost on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

if TYPE_CHECKING:
    # Not at run time: DRF imports this module while rest_framework.views is being defined.
    from rest_framework.views import APIView


@dataclass(frozen=True)
class ApplicationClient:
    """The authenticated party: an application, known by its key."""

    key: str
    is_authenticated: bool = True


def has_valid_key(meta: Mapping[str, Any]) -> bool:
    return meta.get("HTTP_X_APPLICATION_KEY") in settings.API_KEYS


class ApplicationKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApplicationClient, str] | None:
        if not has_valid_key(request.META):
            return None
        key = request.META["HTTP_X_APPLICATION_KEY"]
        return ApplicationClient(key), key


class HasApplicationKey(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, ApplicationClient)
