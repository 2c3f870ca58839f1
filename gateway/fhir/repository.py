"""The store as one caller may use it: every interaction passes the caller's guard first.

Interactions never touch `Store` directly; they get a `Repository` bound to the request's
`AccessContext`. The guard decides (scopes, consent) and records (audit); the default guard
allows everything and is what internal components and the open embedded mode use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from gateway.auth.context import AccessContext
from gateway.store.api import Store, StoredResource, UnitOfWork


class Guard(Protocol):
    def allow(self, access: AccessContext, interaction: str, rtype: str) -> None:
        """Raise FhirError (403) when the caller may not perform `interaction` on `rtype`."""

    def visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: list[StoredResource],
        *,
        interaction: str = "read",
        query: str | None = None,
    ) -> list[StoredResource]:
        """The subset of `rows` the caller may see (each decision audited as `interaction`)."""
        ...


class OpenGuard:
    """No restriction: for internal use and for deployments that run without auth."""

    def allow(self, access: AccessContext, interaction: str, rtype: str) -> None:
        return None

    def visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: list[StoredResource],
        *,
        interaction: str = "read",
        query: str | None = None,
    ) -> list[StoredResource]:
        return rows


class Repository:
    def __init__(self, store: Store, access: AccessContext, guard: Guard | None = None) -> None:
        self.store = store
        self.access = access
        self.guard: Guard = guard or OpenGuard()

    def allow(self, interaction: str, rtype: str) -> None:
        self.guard.allow(self.access, interaction, rtype)

    @property
    def is_open(self) -> bool:
        """True when nothing is hidden from this caller (internal work, or no guard configured)."""
        return self.access.is_system or isinstance(self.guard, OpenGuard)

    def visible(
        self, uow: UnitOfWork, rows: list[StoredResource], *, interaction: str = "read", query: str | None = None
    ) -> list[StoredResource]:
        return self.guard.visible(self.access, uow, rows, interaction=interaction, query=query)

    @contextmanager
    def writer(self) -> Iterator[UnitOfWork]:
        with self.store.writer() as uow:
            yield uow

    @contextmanager
    def reader(self) -> Iterator[UnitOfWork]:
        with self.store.reader() as uow:
            yield uow
