"""Source systems as backends: one `Backend` class per system, one instance per process.

A view declares where its data comes from as data, in merge order::

    object_backends = ((READ_WRITE, "RESERVATIONS"), (READ_ONLY, "CRM"))

Every failure of a source system (refused, timed out, 5xx, not JSON, wrong shape) becomes
`SourceUnavailable` here and nowhere else, which the API answers with 502.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter
from rest_framework.exceptions import APIException

READ_ONLY = "read_only"
READ_WRITE = "read_write"

Record = dict[str, Any]


class SourceUnavailable(APIException):
    status_code = 502
    default_detail = "A source system is unavailable."
    default_code = "source_unavailable"


@dataclass(frozen=True)
class Listing:
    """One page of a collection: the total number of matching records and this page's records."""

    count: int
    items: list[Record]


class Backend:
    """An HTTP client for one source system, with a pooled session of its own.

    `config_variable` names the Django setting that holds the system's base URL.
    Reads answer `None` for a record the system does not have (404).
    """

    config_variable: ClassVar[str] = ""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=4))

    @classmethod
    def from_settings(cls, settings: Any) -> Backend:
        return cls(getattr(settings, cls.config_variable), float(settings.SOURCE_TIMEOUT))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON of a 2xx answer, or None for a 404."""
        try:
            response = self.session.request(
                method, self.base_url + path, params=params, json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise SourceUnavailable() from exc
        if response.status_code == 404:
            return None
        if not 200 <= response.status_code < 300:
            raise SourceUnavailable()
        try:
            return response.json()
        except ValueError as exc:
            raise SourceUnavailable() from exc

    def get_object(self, collection: str, pk: int) -> Record | None:
        return _record_or_none(self.request("GET", f"/{collection}/{pk}"))

    def list_objects(
        self,
        collection: str,
        *,
        offset: int = 0,
        limit: int = 20,
        filters: Mapping[str, int] | None = None,
        ids: Sequence[int] | None = None,
    ) -> Listing:
        params: dict[str, str | int] = {"offset": offset, "limit": limit, **(filters or {})}
        if ids is not None:
            params["ids"] = ",".join(str(pk) for pk in ids)
        answer = self.request("GET", f"/{collection}", params=params)
        if not isinstance(answer, dict):
            raise SourceUnavailable()
        count, items = answer.get("count"), answer.get("items")
        if not isinstance(count, int) or not isinstance(items, list):
            raise SourceUnavailable()
        if not all(isinstance(item, dict) for item in items):
            raise SourceUnavailable()
        return Listing(count, items)

    def create_object(self, collection: str, data: Mapping[str, Any]) -> Record:
        record = self.request("POST", f"/{collection}", body=data)
        if not isinstance(record, dict):
            raise SourceUnavailable()
        return record

    def merge_object(self, collection: str, pk: int, data: Mapping[str, Any]) -> Record | None:
        """Merge `data` into a stored record (the source's PATCH), None when there is none.

        The API's PUT comes here too: it replaces the fields a client sends and keeps the
        ones it does not (`date_created`, omitted optional fields), which the source's own
        PUT (replace everything) would drop."""
        return _record_or_none(self.request("PATCH", f"/{collection}/{pk}", body=data))

    def close(self) -> None:
        self.session.close()


def _record_or_none(answer: Any) -> Record | None:
    if answer is None or isinstance(answer, dict):
        return answer
    raise SourceUnavailable()


class Reservations(Backend):
    config_variable = "RESERVATIONS_URL"


class Crm(Backend):
    config_variable = "CRM_URL"


class Operations(Backend):
    config_variable = "OPERATIONS_URL"


BACKEND_CLASSES: Mapping[str, type[Backend]] = MappingProxyType(
    {"RESERVATIONS": Reservations, "CRM": Crm, "OPERATIONS": Operations}
)


class SourceSystems(Mapping[str, Backend]):
    """The backend instances of one process, by the names views use in `object_backends`."""

    def __init__(self, backends: Mapping[str, Backend]) -> None:
        self._backends = MappingProxyType(dict(backends))

    @classmethod
    def from_settings(cls, settings: Any) -> SourceSystems:
        return cls({name: kind.from_settings(settings) for name, kind in BACKEND_CLASSES.items()})

    def __getitem__(self, name: str) -> Backend:
        return self._backends[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)
