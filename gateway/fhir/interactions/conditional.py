"""Matching for conditional create/update/delete: the search in `If-None-Exist` or the URL."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl

from gateway.fhir.errors import FhirError, invalid
from gateway.fhir.search.parse import parse_search
from gateway.store.api import UnitOfWork


def matching_ids(uow: UnitOfWork, rtype: str, query: str | list[tuple[str, str]]) -> list[str]:
    """Up to two ids matching the criteria (two is enough to know the match is not unique)."""
    items = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else query
    if not items:
        raise invalid("a conditional operation needs search criteria")
    parsed = parse_search(uow.store.registry, rtype, items, strict=True, default_count=2, max_count=2)
    return uow.find_ids(replace(parsed.query, count=2, total="none"))


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
