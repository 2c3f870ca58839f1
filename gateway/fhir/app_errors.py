"""The one place failures become HTTP responses: every error is an OperationOutcome."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.errors import FhirError, outcome
from gateway.fhir.errors import issue as make_issue
from gateway.fhir.responses import error_response, json_response
from gateway.logging import get_logger

log = get_logger("gateway.errors")


async def fhir_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return error_response(exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not-found", 405: "not-supported", 413: "too-long"}.get(exc.status_code, "processing")
    return json_response(outcome([make_issue(code, str(exc.detail))]), exc.status_code)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    return json_response(outcome([make_issue("exception", "internal error; see the server log")]), 500)
