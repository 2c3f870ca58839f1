"""Reading request bodies: the size limit (413), JSON syntax (400) and the resource's type and id."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from gateway.fhir.errors import FhirError, invalid, too_large
from gateway.fhir.resource_types import SUPPORTED_TYPES


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise invalid("request body is empty; a FHIR resource was expected")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise invalid("the body must be a JSON object (a FHIR resource)")
    return data


def check_type(rtype: str) -> None:
    if rtype not in SUPPORTED_TYPES:
        raise FhirError("not-supported", f"resource type {rtype!r} is not supported by this server", status=404)


def parse_resource(body: bytes, rtype: str | None = None, rid: str | None = None) -> dict[str, Any]:
    """The resource in `body`, checked against the type (and id) in the URL."""
    data = parse_json(body)
    body_type = data.get("resourceType")
    if not isinstance(body_type, str):
        raise invalid("resourceType is missing", ["resourceType"])
    if rtype is not None and body_type != rtype:
        raise invalid(f"resourceType {body_type!r} does not match the URL type {rtype!r}", ["resourceType"])
    check_type(body_type)
    if rid is not None:
        if "id" not in data:
            raise invalid(f"the resource must carry id {rid!r} to match the URL", [f"{body_type}.id"])
        if data["id"] != rid:
            raise invalid(f"id {data['id']!r} in the body does not match {rid!r} in the URL", [f"{body_type}.id"])
    return data


async def operation_parameters(
    request: Request, limit: int, *, operation: str, value_keys: tuple[str, ...]
) -> list[tuple[str, str]]:
    """An operation's query parameters, plus those of a POSTed `Parameters` body as strings.

    `value_keys` are the `value[x]` types the operation takes; a parameter with none of them is
    left out. Booleans are spelt as in a query string (`true`/`false`).
    """
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        raw = await read_body(request, limit)
        if raw.strip():
            body = parse_json(raw)
            if body.get("resourceType") != "Parameters":
                raise invalid(f"{operation} accepts a Parameters resource as its body")
            for p in body.get("parameter") or []:
                value = next((p[k] for k in value_keys if k in p), None)
                if isinstance(p.get("name"), str) and value is not None:
                    items.append((p["name"], str(value).lower() if isinstance(value, bool) else str(value)))
    return items
