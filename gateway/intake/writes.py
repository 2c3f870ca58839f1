"""Store writes the intakes share: find-by-identifier, conditional upsert, Patient merge-in.

One person should have one Patient whichever source named them first, so a Patient is found by
any of its keys (the source's own number first, then a valid NHS number) and what a source sends
is laid over what is already known: fields it sends replace, identifiers and links accumulate,
and nothing another source said is dropped.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.fhir.interactions.conditional import matching_ids
from gateway.store.api import StoredResource, UnitOfWork
from gateway.types import JSON


class AmbiguousMatch(ValueError):
    """More than one live resource holds an identifier that should be unique."""


def token(identifier: JSON) -> str:
    return f"{identifier['system']}|{identifier['value']}"


def replaced(res: JSON) -> bool:
    return any(link.get("type") == "replaced-by" for link in res.get("link") or [])


def find_one(uow: UnitOfWork, rtype: str, identifier: JSON, *, exclude: str | None = None) -> StoredResource | None:
    """The one live resource holding `identifier`; a record merged away loses to its survivor."""
    ids = matching_ids(uow, rtype, [("identifier", token(identifier))])
    found = [s for s in uow.fetch_many((rtype, i) for i in ids) if s.id != exclude]
    if len(found) > 1:
        found = [s for s in found if not replaced(s.json())] or found
    if len(found) > 1:
        raise AmbiguousMatch(f"more than one {rtype} holds an identifier of system {identifier['system']}")
    return found[0] if found else None


def merge_identifiers(first: list[JSON], second: list[JSON]) -> list[JSON]:
    seen = {(i.get("system"), i.get("value")) for i in first}
    return first + [i for i in second if (i.get("system"), i.get("value")) not in seen]


def merge_links(first: list[JSON], second: list[JSON]) -> list[JSON]:
    def key(link: JSON) -> tuple[Any, Any]:
        return link.get("type"), (link.get("other") or {}).get("reference")

    seen = {key(link) for link in first}
    return first + [link for link in second if key(link) not in seen]


def _merge_tags(old: JSON, new: JSON) -> list[JSON]:
    tags: list[JSON] = list((old.get("meta") or {}).get("tag") or [])
    for tag in (new.get("meta") or {}).get("tag") or []:
        if not any(t.get("system") == tag.get("system") and t.get("code") == tag.get("code") for t in tags):
            tags.append(tag)
    return tags


def overlay_patient(old: JSON, new: JSON) -> JSON:
    """`new` laid over `old`: its fields win, identifiers/links/source tags accumulate."""
    merged: dict[str, Any] = {**copy.deepcopy(old), **copy.deepcopy(new)}
    merged["id"] = old["id"]
    merged["identifier"] = merge_identifiers(new.get("identifier") or [], old.get("identifier") or [])
    links = merge_links(old.get("link") or [], new.get("link") or [])
    if links:
        merged["link"] = links
    tags = _merge_tags(old, new)
    if tags:
        merged["meta"] = {"tag": tags}
    if replaced(old):
        merged["active"] = False  # a merged-away record stays retired whatever a sender says of it
    return merged


def upsert_patient(uow: UnitOfWork, patient: JSON, keys: list[JSON]) -> StoredResource:
    """Find the Patient by the first key that matches, merge `patient` in, or create it."""
    current = None
    for key in keys:
        current = find_one(uow, "Patient", key)
        if current is not None:
            break
    if current is None:
        return uow.create(copy.deepcopy(patient))
    return uow.update(overlay_patient(current.json(), patient))[0]


def upsert_by_identifier(uow: UnitOfWork, res: JSON) -> StoredResource:
    """Conditional update on the resource's first identifier (create when none matches)."""
    new: dict[str, Any] = copy.deepcopy(res)
    identifiers = new.get("identifier") or []
    if isinstance(identifiers, dict):  # QuestionnaireResponse.identifier is a single Identifier
        identifiers = [identifiers]
    current = find_one(uow, new["resourceType"], identifiers[0]) if identifiers else None
    if current is None:
        return uow.create(new)
    new["id"] = current.id
    return uow.update(new)[0]
