"""Helpers the interaction modules share: the per-request repository, threads, search parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.fhir.repository import ClientCheck, Repository
from gateway.fhir.responses import Prefer
from gateway.fhir.search.parse import ParsedSearch, parse_search
from gateway.fhir.services import Services, services_of

T = TypeVar("T")


def repository(request: Request, *, client_in_transaction: bool = False) -> Repository:
    """The store as the request's caller may use it.

    `client_in_transaction`: the handler does all its work in `Repository.reader()`/`writer()`, so
    the check that the caller's client is still enabled is left to the repository (inside the
    request's transaction, see `Repository`), not made on a connection of its own before it (and
    not on the event loop).
    """
    services = services_of(request)
    enabled = services.client_enabled
    if client_in_transaction and services.authenticate_token is not None and enabled is not None:
        access = services.authenticate_token(request)
        request.state.access = access
        client = ClientCheck(access.client_id, enabled)
        return Repository(services.store, access, services.extras.get("guard"), client=client)
    access = services.authenticate(request)
    request.state.access = access
    return Repository(services.store, access, services.extras.get("guard"))


AUDIT_TYPES = ("AuditEvent", "*")  # a read of these reads the audit trail


def audit_settled(services: Services, rtype: str | None) -> None:
    """Before the audit trail is read: every access audited so far is stored first (the writer
    batches in the background), so an auditor is told of a look made just before. Blocks: call it
    in the request's thread."""
    flush = services.extras.get("audit_flush")
    if flush is not None and (rtype or "*") in AUDIT_TYPES:
        flush()


async def in_thread(fn: Callable[[], T]) -> T:
    """Database work is synchronous; keep it off the event loop."""
    return await run_in_threadpool(fn)


def parse_request_search(services: Services, rtype: str, items: list[tuple[str, str]], prefer: Prefer) -> ParsedSearch:
    strict = (prefer.handling or services.settings.default_handling) == "strict"
    return parse_search(
        services.store.registry,
        rtype,
        items,
        strict=strict,
        default_count=services.settings.default_page_size,
        max_count=services.settings.max_page_size,
    )
