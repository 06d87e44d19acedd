"""URL configuration: the router's patterns, and JSON envelopes for Django's own errors."""

from django.conf import settings

from drf_app.backends import SourceSystems
from drf_app.faults import fault_patterns
from drf_app.resources import RESOURCES
from drf_app.routers import GatewayRouter


def build_router(sources: SourceSystems) -> GatewayRouter:
    router = GatewayRouter(sources)
    for prefix, view in RESOURCES:
        router.register(prefix, view, basename=prefix)
    return router


urlpatterns = [
    *fault_patterns(settings.FAULTS, [prefix for prefix, _ in RESOURCES]),
    *build_router(SourceSystems.from_settings(settings)).urls,
]

handler400 = "drf_app.errors.bad_request"
handler404 = "drf_app.errors.not_found"
handler500 = "drf_app.errors.server_error"
