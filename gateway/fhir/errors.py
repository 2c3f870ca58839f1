"""The one exception type for FHIR errors, and the one table from issue category to HTTP status.

Handlers raise `FhirError`; a single exception handler in `gateway/fhir/app_errors.py` renders it
as an OperationOutcome. Nothing else builds outcome dictionaries.
"""

from __future__ import annotations

from typing import Any

# OperationOutcome.issue.code -> HTTP status. One table, used for every error.
STATUS_BY_CODE: dict[str, int] = {
    "invalid": 400,
    "structure": 400,
    "required": 400,
    "value": 400,
    "invariant": 400,
    "processing": 422,
    "not-supported": 400,
    "security": 403,
    "login": 401,
    "forbidden": 403,
    "not-found": 404,
    "deleted": 410,
    "conflict": 409,
    "duplicate": 409,
    "multiple-matches": 412,
    "too-costly": 413,
    "too-long": 413,
    "throttled": 429,
    "exception": 500,
    "transient": 503,
    "timeout": 504,
}


def issue(
    code: str, diagnostics: str, *, severity: str = "error", expression: list[str] | None = None
) -> dict[str, Any]:
    """One OperationOutcome.issue entry."""
    item: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        item["expression"] = expression
    return item


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


class FhirError(Exception):
    """A failure that is the client's or the server's, carried as an OperationOutcome."""

    def __init__(
        self,
        code: str,
        diagnostics: str,
        *,
        status: int | None = None,
        expression: list[str] | None = None,
        issues: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.code = code
        self.diagnostics = diagnostics
        self.status = status if status is not None else STATUS_BY_CODE.get(code, 400)
        self.issues = issues or [issue(code, diagnostics, expression=expression)]
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return outcome(self.issues)

    def __repr__(self) -> str:
        return f"FhirError(status={self.status}, code={self.code!r}, diagnostics={self.diagnostics!r})"


def not_found(what: str) -> FhirError:
    return FhirError("not-found", f"{what} is not known", status=404)


def gone(what: str) -> FhirError:
    return FhirError("deleted", f"{what} has been deleted", status=410)


def invalid(detail: str, expression: list[str] | None = None, *, status: int = 400) -> FhirError:
    return FhirError("invalid", detail, expression=expression, status=status)


def unprocessable(issues: list[dict[str, Any]]) -> FhirError:
    first = issues[0]["diagnostics"] if issues else "resource is not valid"
    return FhirError("processing", first, status=422, issues=issues)


def not_supported(detail: str) -> FhirError:
    return FhirError("not-supported", detail, status=400)


def conflict(detail: str) -> FhirError:
    return FhirError("conflict", detail, status=409)


def precondition_failed(detail: str) -> FhirError:
    return FhirError("conflict", detail, status=412)


def forbidden(detail: str) -> FhirError:
    return FhirError("forbidden", detail, status=403)


def unauthorized(detail: str) -> FhirError:
    return FhirError("login", detail, status=401, headers={"WWW-Authenticate": "Bearer"})


def too_large(detail: str) -> FhirError:
    return FhirError("too-long", detail, status=413)
