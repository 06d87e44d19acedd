"""Source systems as backends: one `Backend` class per system, one instance per process.

A view declares where its data comes from as data, in merge order::

    object_backends = ((READ_WRITE, "RESERVATIONS"), (READ_ONLY, "CRM"))

Every failure of a source system (refused, timed out, 5xx, not JSON, wrong shape) becomes
`SourceUnavailable` here and nowhere else, which the API answers with 502.

A dry run's backends (`SourceSystems.dry_run()`) sign every call with dry-run headers over its
method, its path and query as sent and its body bytes as sent (serialised here, not by
requests, so the signed bytes are the sent bytes); the source systems then roll it back.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from rest_framework.exceptions import APIException

from proxy.dryrun import sign

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
    Reads answer `None` for a record the system does not have (404). `signing_secret` is set
    only on a dry run's copy (`signing`): every call then carries signed dry-run headers.
    """

    config_variable: ClassVar[str] = ""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.signing_secret: str | None = None
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=4))

    @classmethod
    def from_settings(cls, settings: Any) -> Backend:
        return cls(getattr(settings, cls.config_variable), float(settings.SOURCE_TIMEOUT))

    def signing(self, secret: str) -> Backend:
        """This backend, on the same session, signing every call as a dry run under `secret`."""
        signed = copy.copy(self)
        signed.signing_secret = secret
        return signed

    def headers(self, method: str, target: str, data: bytes | None) -> dict[str, str]:
        headers = {} if data is None else {"Content-Type": "application/json"}
        if self.signing_secret is not None:
            now = time.time()
            headers.update(sign(self.signing_secret, method, target, data or b"", now))
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON of a 2xx answer, or None for a 404."""
        target = f"{path}?{urlencode(params)}" if params else path
        data = None if body is None else json.dumps(body).encode()
        headers = self.headers(method, target, data)
        try:
            response = self.session.request(
                method, self.base_url + target, data=data, headers=headers, timeout=self.timeout
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
    """The backend instances of one process, by the names views use in `object_backends`.

    `shadow_secret` (settings.SHADOW_SECRET) signs the calls of a dry run (`dry_run`)."""

    def __init__(self, backends: Mapping[str, Backend], shadow_secret: str | None = None) -> None:
        self._backends = MappingProxyType(dict(backends))
        self.shadow_secret = shadow_secret

    @classmethod
    def from_settings(cls, settings: Any) -> SourceSystems:
        backends = {name: kind.from_settings(settings) for name, kind in BACKEND_CLASSES.items()}
        return cls(backends, settings.SHADOW_SECRET)

    def dry_run(self) -> SourceSystems:
        """The same backends for one verified dry run: every call signed anew."""
        secret = self.shadow_secret
        assert secret, "a dry run is only verified when there is a secret"
        return SourceSystems({name: b.signing(secret) for name, b in self.items()}, secret)

    def __getitem__(self, name: str) -> Backend:
        return self._backends[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)
