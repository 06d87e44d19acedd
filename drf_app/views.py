"""The generic resource view: DRF's GenericAPIView with source systems instead of a queryset.

A resource is data on a subclass (see `resources`): where its records live
(`object_backends`), which fields link to other resources, its variations and the
resources nested under it. Reads merge the backends in declared order (a later one wins on
collision); writes go only to READ_WRITE backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.http import QueryDict
from rest_framework import status
from rest_framework.exceptions import MethodNotAllowed, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from drf_app.backends import READ_WRITE, Backend, Record, SourceSystems, SourceUnavailable
from drf_app.dryrun import is_dry_run
from drf_app.errors import invalid_body
from drf_app.negotiation import accept_decides, format_param, unknown_format
from drf_app.objects import NO_REFERENCES, Reference, base_url, build_object, build_variation
from drf_app.pagination import page_envelope, parse_page_request

if TYPE_CHECKING:
    from drf_app.serializers import WriteSerializer

MAX_IDS = 1000
POSITIVE_ID = "0*[1-9][0-9]*"
ALLOW_ORDER = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Variations:
    """Where a resource's variations live: `<resource>/<id>/<variation_id>`."""

    backend: str
    collection: str
    parent_field: str


@dataclass(frozen=True)
class Nested:
    """A resource listed under this one: `<resource>/<id>/<nested.resource>`, filtered on
    `field` = id (and, under a variation, `variation_field` = variation id)."""

    resource: str
    field: str
    variation_field: str | None = None


@dataclass(frozen=True)
class NestedIn:
    """What the router hands a view serving a nested list: the parent and the filter fields."""

    parent: type[ResourceView]
    field: str
    variation_field: str | None = None


class ResourceView(GenericViewSet[Any]):  # Any: no models; objects are dicts from records.
    """Read side of a resource: list, retrieve, variations and nested lists."""

    object_backends: ClassVar[tuple[tuple[str, str], ...]] = ()
    collection: ClassVar[str] = ""
    links: ClassVar[Mapping[str, str]] = MappingProxyType({})
    references: ClassVar[Mapping[str, Reference]] = NO_REFERENCES
    variations: ClassVar[Variations | None] = None
    nested: ClassVar[tuple[Nested, ...]] = ()
    lookup_value_regex = POSITIVE_ID

    sources: SourceSystems | None = None
    nested_in: NestedIn | None = None

    @classmethod
    def source_backends(cls, sources: SourceSystems) -> list[tuple[str, Backend]]:
        return [(mode, sources[name]) for mode, name in cls.object_backends]

    @classmethod
    def first_record(cls, sources: SourceSystems, pk: int) -> Record:
        record = sources[cls.object_backends[0][1]].get_object(cls.collection, pk)
        if record is None:
            raise NotFound()
        return record

    @classmethod
    def variation_record(cls, sources: SourceSystems, pk: int, vid: int) -> Record:
        if cls.variations is None:
            raise NotFound()
        spec = cls.variations
        record = sources[spec.backend].get_object(spec.collection, vid)
        if record is None or record.get(spec.parent_field) != pk:
            raise NotFound()
        return record

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's per-request set-up (negotiation, then the key check); then an unknown
        `?format=` is a 404 (before the method check, as in legacy), and a verified dry run
        (`drf_app.dryrun`) gets source systems that sign each call, so the source systems roll
        its writes back."""
        super().initial(request, *args, **kwargs)
        if unknown_format(format_param(request.query_params)):
            raise NotFound()
        if is_dry_run(request):
            self.sources = self.systems.dry_run()

    @property
    def systems(self) -> SourceSystems:
        assert self.sources is not None, "views get their source systems from the router"
        return self.sources

    def base(self) -> str:
        return base_url(self.request.META, self.request.scheme)

    def build(self, pk: int, records: list[Record | None]) -> Record:
        return build_object(
            self.basename,
            pk,
            records,
            self.links,
            self.base(),
            variations=bool(self.variations),
            references=self.references,
            nested=[nested.resource for nested in self.nested],
        )

    def get_object(self) -> Record:
        pk = int(self.kwargs["pk"])
        vid = self.kwargs.get("variation_id")
        if vid is not None:
            record = self.variation_record(self.systems, pk, int(vid))
            assert self.variations is not None
            parent_field = self.variations.parent_field
            nested = [n.resource for n in self.nested if n.variation_field is not None]
            return build_variation(
                self.basename, pk, int(vid), record, parent_field, self.base(), nested
            )
        first = self.first_record(self.systems, pk)
        later = [backend.get_object(self.collection, pk) for _, backend in self.later_backends()]
        return self.build(pk, [first, *later])

    def later_backends(self) -> list[tuple[str, Backend]]:
        return self.source_backends(self.systems)[1:]

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_object())

    @property
    def default_response_headers(self) -> dict[str, str]:
        """`Vary: Accept` when Accept chose the format (DRF's `finalize_response` merges it into
        any Vary the answer has); no `Allow`: it goes only on OPTIONS and 405, as in legacy."""
        if accept_decides(format_param(self.request.query_params)):
            return {"Vary": "Accept"}
        return {}

    def methods(self) -> list[str]:
        """The allowed methods in legacy's order: `GET, HEAD, OPTIONS, PUT, PATCH`."""
        methods: list[str] = self.allowed_methods
        return sorted(methods, key=allow_rank)

    def allow(self) -> str:
        return ", ".join(self.methods())

    # DRF calls handlers with its Request, not the HttpRequest Django's View declares (the DRF
    # stubs ignore the same override on APIView).
    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        """200 naming the resource and its methods, in the body (gapipy's `options()` reads it
        as JSON) and in `Allow`, like legacy (no DRF metadata)."""
        body = {"name": self.basename, "methods": self.methods()}
        return Response(body, headers={"Allow": self.allow()})

    def http_method_not_allowed(  # type: ignore[override]
        self, request: Request, *args: Any, **kwargs: Any
    ) -> Response:
        self.headers["Allow"] = self.allow()
        # The method of a dispatched request is always set (HttpRequest.method is Optional).
        raise MethodNotAllowed(cast(str, request.method))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = parse_page_request(first_values(request.query_params))
        filters = self.nested_filters()
        first = self.source_backends(self.systems)[0][1]
        listing = first.list_objects(
            self.collection, offset=page.offset, limit=page.max_per_page, filters=filters
        )
        ids = [_record_id(item) for item in listing.items]
        later = [self.records_by_id(backend, ids) for _, backend in self.later_backends()]
        results = [
            self.build(pk, [item, *(records.get(pk) for records in later)])
            for pk, item in zip(ids, listing.items, strict=True)
        ]
        url = self.base() + request.path.rstrip("/")
        return Response(page_envelope(url, page, listing.count, results))

    def records_by_id(self, backend: Backend, ids: Sequence[int]) -> dict[int, Record]:
        """One request for all of a page's records in a later backend (no N+1)."""
        if not ids:
            return {}
        listing = backend.list_objects(self.collection, limit=min(len(ids), MAX_IDS), ids=ids)
        return {_record_id(item): item for item in listing.items}

    def nested_filters(self) -> dict[str, int]:
        """Filters of a nested list, once its parent (or parent variation) is known to exist."""
        if self.nested_in is None:
            return {}
        parent, pk = self.nested_in.parent, int(self.kwargs["parent_pk"])
        vid = self.kwargs.get("parent_variation_id")
        if vid is None:
            parent.first_record(self.systems, pk)
            return {self.nested_in.field: pk}
        parent.variation_record(self.systems, pk, int(vid))
        assert self.nested_in.variation_field is not None
        return {self.nested_in.field: pk, self.nested_in.variation_field: int(vid)}


class WritableResourceView(ResourceView):
    """A resource clients also create (POST) and change (PUT, PATCH)."""

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.prepare_create(self.validated_body(partial=False))
        return Response(self.write(None, data), status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.change(int(kwargs["pk"]), partial=False))

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.change(int(kwargs["pk"]), partial=True))

    def change(self, pk: int, *, partial: bool) -> Record:
        """PUT/PATCH: like DRF's UpdateModelMixin, a missing object is a 404 before any 400."""
        self.first_record(self.systems, pk)
        return self.write(pk, self.validated_body(partial=partial))

    def prepare_create(self, data: dict[str, Any]) -> dict[str, Any]:
        """Fields the gateway sets on creation; a hook for resources."""
        return data

    def validated_body(self, *, partial: bool) -> dict[str, Any]:
        if self.request.stream is None:
            raise invalid_body(self.request.content_type)
        body = self.request.data
        if not isinstance(body, dict):
            raise invalid_body(self.request.content_type)
        # `serializer_class` of a writable resource is a WriteSerializer (see `resources`).
        serializer = cast("WriteSerializer", self.get_serializer(data=body, partial=partial))
        serializer.is_valid(raise_exception=True)
        return serializer.wire_data()

    def write(self, pk: int | None, data: dict[str, Any]) -> Record:
        """Create (pk None) or update in every READ_WRITE backend, read the others; the merged
        object is the answer, as a GET would return it. An update (PUT or PATCH, once
        validated) changes the fields in `data` and keeps every other stored field."""
        records: list[Record | None] = []
        for mode, backend in self.source_backends(self.systems):
            if mode != READ_WRITE:
                assert pk is not None, "the first backend of a writable resource is READ_WRITE"
                records.append(backend.get_object(self.collection, pk))
            elif pk is None:
                records.append(backend.create_object(self.collection, data))
                pk = _record_id(records[-1])
            else:
                record = backend.merge_object(self.collection, pk, data)
                if record is None:
                    raise NotFound()
                records.append(record)
        assert pk is not None
        return self.build(pk, records)


def allow_rank(method: str) -> int:
    return ALLOW_ORDER.index(method) if method in ALLOW_ORDER else len(ALLOW_ORDER)


def first_values(query: QueryDict) -> dict[str, str]:
    """The first value of each query parameter, as legacy (Flask) reads `?page=1&page=2`."""
    return {name: values[0] for name, values in query.lists() if values}


def _record_id(record: Record | None) -> int:
    pk = None if record is None else record.get("id")
    if not isinstance(pk, int):
        raise SourceUnavailable()
    return pk
