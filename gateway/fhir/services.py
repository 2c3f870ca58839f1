"""The long-lived parts one gateway process shares between requests, built once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request

from gateway.activity import Activity
from gateway.auth.context import AccessContext
from gateway.fhir.search.paging import PageSigner
from gateway.settings import Settings
from gateway.store.api import Store

Authenticator = Callable[[Request], AccessContext]
ClientEnabled = Callable[[Connection, str], bool]


@dataclass
class Services:
    settings: Settings
    store: Store
    signer: PageSigner
    authenticate: Authenticator
    extras: dict[str, Any] = field(default_factory=dict)
    # When tokens are required: the token check alone, and the client-registration check for a request
    # to make inside its own first transaction (`Repository`), instead of `authenticate` doing both.
    authenticate_token: Authenticator | None = None
    client_enabled: ClientEnabled | None = None
    activity: Activity = field(default_factory=Activity)  # requests in flight (gateway/activity.py)

    @property
    def fhir_base(self) -> str:
        return self.settings.fhir_base


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
