"""A SimpleRouter that serves every URL shape of a resource from one `register` call.

For `router.register("itineraries", ItineraryView)` it produces, in this order (ID being
a positive integer, `0*[1-9][0-9]*`, as legacy reads ids)::

    ^itineraries/?$                                                  list, create
    ^itineraries/(?P<pk>ID)(?:/(?P<variation_id>ID))?/?$             object, variation
    ^itineraries/(?P<parent_pk>ID)/itinerary_maps/?$                 nested list
    ^itineraries/(?P<parent_pk>ID)/(?P<parent_variation_id>ID)/itinerary_maps/?$

The variation group only exists for views with `variations`. Ids and variation ids are
digits and nested names are not, so `itineraries/2222/3333` and
`itineraries/2222/itinerary_maps` cannot both match. A nested list is served by the nested
resource's own view (its `list`), told its parent through `nested_in`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.urls import URLPattern, re_path
from rest_framework.routers import Route, SimpleRouter

from drf_app.backends import SourceSystems
from drf_app.views import POSITIVE_ID as ID
from drf_app.views import Nested, NestedIn, ResourceView

if TYPE_CHECKING:
    from typing import TypeAlias

    from django.urls import URLResolver
    from rest_framework.views import AsView, GenericView
    from rest_framework.viewsets import ViewSetMixin

    Registry: TypeAlias = list[tuple[str, type[ResourceView], str]]


class GatewayRouter(SimpleRouter):
    """Trailing slash optional; every view it binds gets the process's source systems."""

    def __init__(self, sources: SourceSystems | None = None) -> None:
        super().__init__()
        self.trailing_slash = "/?"
        self.sources = sources

    def get_routes(self, viewset: type[ViewSetMixin]) -> list[Route]:
        routes = super().get_routes(viewset)
        return [
            route._replace(initkwargs={**route.initkwargs, "sources": self.sources})
            for route in routes
        ]

    def get_lookup_regex(self, viewset: type[ViewSetMixin], lookup_prefix: str = "") -> str:
        regex = super().get_lookup_regex(viewset, lookup_prefix)
        if getattr(viewset, "variations", None) is None:
            return regex
        return f"{regex}(?:/(?P<{lookup_prefix}variation_id>{ID}))?"

    def get_urls(self) -> list[URLPattern | URLResolver]:
        urls = super().get_urls()
        return urls + self.get_nested_urls()

    def get_nested_urls(self) -> list[URLPattern]:
        # Only ResourceViews are registered: the routes pass `sources`, which no other view takes.
        registry = cast("Registry", self.registry)
        registered = {prefix: (viewset, basename) for prefix, viewset, basename in registry}
        urls: list[URLPattern] = []
        for prefix, viewset, basename in registry:
            parent = SimpleRouter.get_lookup_regex(self, viewset, "parent_")
            for nested in viewset.nested:
                child, child_basename = registered[nested.resource]
                shapes = [(parent, f"{basename}-{nested.resource}-list")]
                if nested.variation_field is not None:
                    shapes.append(
                        (
                            f"{parent}/(?P<parent_variation_id>{ID})",
                            f"{basename}-variation-{nested.resource}-list",
                        )
                    )
                for lookup, name in shapes:
                    regex = f"^{prefix}/{lookup}/{nested.resource}{self.trailing_slash}$"
                    view = self.nested_view(viewset, nested, child, child_basename)
                    urls.append(re_path(regex, view, name=name))
        return urls

    def nested_view(
        self, parent: type[ResourceView], nested: Nested, child: type[ResourceView], basename: str
    ) -> AsView[GenericView]:
        return child.as_view(
            {"get": "list"},
            basename=basename,
            detail=False,
            suffix="List",
            sources=self.sources,
            nested_in=NestedIn(parent, nested.field, nested.variation_field),
        )
