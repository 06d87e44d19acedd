"""A shadow report (GET /-/diffs?resource=bookings) as the admin API answers it, built by hand:
for the tests of `strangler diffs` and of the pytest export."""

from __future__ import annotations

import json
from typing import Any

POST_BODY = b'{"tour_id": 1}'
POST_ANSWER = {"id": 52, "tour_id": 1}
GET_ANSWER = {"id": 7, "total": 1, "meta": {"generated_at": "2026-11-28T09:00:00Z"}}


def mismatch(
    time: str, method: str, path: str, kind: str, live_status: int, shadow_status: int, **more: Any
) -> dict[str, Any]:
    found = {
        "time": time,
        "resource": "bookings",
        "method": method,
        "path": path,
        "request_id": f"rid-{time[11:19]}",
        "backend": "legacy",
        "shadow_backend": "drf",
        "live_status": live_status,
        "shadow_status": shadow_status,
        "class": kind,
        "dry_run": False,
        "differences": [],
        "request": {"headers": [["Accept", "application/json"]], "body": ""},
        "live": {"content_type": "application/json", "body": "{}"},
    }
    return {**found, **more}


def report() -> dict[str, Any]:
    """Four kept mismatches: two POSTs of one shape (status), a GET (value), a GET (noise)."""
    post = {
        "headers": [["Content-Type", "application/json"], ["X-Application-Key", "<redacted>"]],
        "body": POST_BODY.decode(),
    }
    return {
        "resource": "bookings",
        "shadow": {
            "backend": "drf",
            "percent": 100.0,
            "ignore": ["$.meta.generated_at"],
            "learn_noise": 0.05,
            "noise_after": 3,
            "writes": "dry-run",
        },
        "match": 98.0,
        "mismatch": 3.0,
        "noise": 5.0,
        "error": 0.0,
        "dropped": 0.0,
        "match_rate": 0.98,
        "classes": {"status": 2.0, "schema": 0.0, "value": 1.0, "header": 0.0, "noise": 5.0},
        "worst": "status",
        "noise_paths": {"$.results[*].token": 4, "$.meta.generated_at": 7, "$.links.self": 1},
        "mismatches": [
            mismatch(
                "2026-11-28T10:00:00.123Z",
                "POST",
                "/bookings/resource",
                "status",
                201,
                404,
                dry_run=True,
                differences=[
                    {
                        "field": "status",
                        "kind": "changed",
                        "class": "status",
                        "live": 201,
                        "shadow": 404,
                    },
                    {
                        "field": "$.id",
                        "kind": "removed",
                        "class": "schema",
                        "live": 52,
                        "shadow": None,
                    },
                ],
                request=post,
                live={"content_type": "application/json", "body": json.dumps(POST_ANSWER)},
            ),
            mismatch(
                "2026-11-28T09:30:00.000Z",
                "POST",
                "/bookings/resource",
                "status",
                201,
                500,
                request={**post, "body": '{"tour_id": 2}'},
            ),
            mismatch(
                "2026-11-28T09:00:00.000Z",
                "GET",
                "/bookings/7?expand=1",
                "value",
                200,
                200,
                request_id=None,
                differences=[
                    {
                        "field": "$.total",
                        "kind": "changed",
                        "class": "value",
                        "live": 1,
                        "shadow": 2,
                    },
                ],
                live={"content_type": "application/json", "body": json.dumps(GET_ANSWER)},
            ),
            mismatch(
                "2026-11-28T10:05:00.000Z",
                "GET",
                "/bookings/8",
                "noise",
                200,
                200,
                differences=[
                    {
                        "field": "$.meta.generated_at",
                        "kind": "changed",
                        "class": "noise",
                        "live": "a",
                        "shadow": "b",
                    },
                ],
            ),
        ],
    }
