"""OAuth 2.0 token-endpoint errors (RFC 6749 §5.2): a code, a description, and the HTTP status.

These are the token endpoint's own JSON errors. The FHIR face uses `gateway.fhir.errors` instead.
"""

from __future__ import annotations


class OAuthError(Exception):
    """Rendered as `{"error": code, "error_description": description}` with `status`."""

    status = 400

    def __init__(self, code: str, description: str, *, status: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}

    def __repr__(self) -> str:
        return f"OAuthError(status={self.status}, code={self.code!r}, description={self.description!r})"


def invalid_client(description: str) -> OAuthError:
    """Client authentication failed: always 401, whatever the reason, so no reason leaks by status."""
    return OAuthError("invalid_client", description, status=401)


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_scope(description: str) -> OAuthError:
    return OAuthError("invalid_scope", description)


def unsupported_grant_type(description: str) -> OAuthError:
    return OAuthError("unsupported_grant_type", description)
