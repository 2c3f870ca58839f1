"""Building FHIR HTTP responses: content type, ETag/Location/Last-Modified, Prefer handling.

Stored resources are served as their stored bytes; bundles embed those bytes with
`orjson.Fragment` instead of parsing and re-serialising every entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.errors import FhirError, issue, outcome
from gateway.store.api import StoredResource

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Prefer:
    """The parts of the `Prefer` header the gateway honours."""

    return_: str = "representation"  # minimal | representation | OperationOutcome
    handling: str | None = None  # strict | lenient

    @classmethod
    def from_request(cls, request: Request) -> Prefer:
        values: dict[str, str] = {}
        for header in request.headers.getlist("prefer"):
            for part in header.split(","):
                key, _, value = part.strip().partition("=")
                values[key.strip().lower()] = value.strip().strip('"')
        ret = values.get("return", "representation")
        if ret not in ("minimal", "representation", "OperationOutcome"):
            ret = "representation"
        handling = values.get("handling")
        return cls(ret, handling if handling in ("strict", "lenient") else None)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content, status_code=status, headers=headers, media_type=FHIR_JSON)


def error_response(err: FhirError) -> Response:
    return json_response(err.outcome(), err.status, err.headers or None)


def http_date(stored: StoredResource) -> str:
    return format_datetime(stored.last_updated.replace(tzinfo=UTC), usegmt=True)


def version_headers(stored: StoredResource, fhir_base: str, *, location: bool = False) -> dict[str, str]:
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored)}
    if location:
        headers["Location"] = f"{fhir_base}/{stored.type}/{stored.id}/_history/{stored.version_id}"
    return headers


def resource_response(stored: StoredResource, fhir_base: str) -> Response:
    return json_response(stored.content or b"{}", 200, version_headers(stored, fhir_base))


def write_response(stored: StoredResource, status: int, prefer: Prefer, fhir_base: str, message: str) -> Response:
    """The answer to a create/update, shaped by `Prefer: return=`."""
    headers = version_headers(stored, fhir_base, location=True)
    if prefer.return_ == "minimal":
        return Response(status_code=status, headers=headers)
    if prefer.return_ == "OperationOutcome":
        return json_response(outcome([issue("informational", message, severity="information")]), status, headers)
    return json_response(stored.content or b"{}", status, headers)
