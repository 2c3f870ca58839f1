"""Matching for conditional create/update/delete: the search in `If-None-Exist` or the URL.

Matching is a search by the caller, so it sees only what the caller may see: a hidden match is
no match. Otherwise a conditional create would hand back a hidden resource, and a conditional
update by NHS number would tell (200 or 201) whether a hidden person holds that number.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl

from gateway.fhir.errors import FhirError, invalid
from gateway.fhir.repository import Repository
from gateway.fhir.search.guarded import search_as
from gateway.fhir.search.parse import parse_search
from gateway.store.api import UnitOfWork


def matching_ids(uow: UnitOfWork, repo: Repository, rtype: str, query: str | list[tuple[str, str]]) -> list[str]:
    """Up to two ids the caller may see matching the criteria (two tell that the match is not unique)."""
    items = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else query
    if not items:
        raise invalid("a conditional operation needs search criteria")
    parsed = parse_search(uow.store.registry, rtype, items, strict=True, default_count=2, max_count=2)
    q = replace(parsed.query, count=2, total="none")
    if repo.is_open:
        return uow.find_ids(q)
    text = query if isinstance(query, str) else "&".join(f"{k}={v}" for k, v in query)
    return [row.id for row in search_as(uow, repo, q, text).rows]


def not_writable(rtype: str, rid: str) -> FhirError:
    """A PUT to an id that holds a resource the caller may not see: it can be neither replaced
    nor created anew. The answer names nothing of the resource (no version, no content)."""
    return FhirError("conflict", f"{rtype}/{rid} cannot be written by this client", status=409)


def multiple_matches(rtype: str, query: str) -> FhirError:
    return FhirError("multiple-matches", f"more than one {rtype} matches {query!r}", status=412)


def parse_if_match(header: str | None) -> int | None:
    if header is None:
        return None
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit():
        raise invalid(f'If-Match must name a version such as W/"1", not {header!r}')
    return int(value)
