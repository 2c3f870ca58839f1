"""Accept a FHIR transaction or batch Bundle from a community provider, checked and tagged.

Providers that already speak FHIR send their contacts, referrals and teams as a Bundle. We check
each entry is a resource of a type this source may write (structurally valid R4, NHS numbers
valid), only creates and updates (a provider does not delete from the shared record), and tag
every resource with the source so its origin survives in the unified record. A transaction is all
or nothing: one bad entry refuses the whole Bundle. A batch keeps the good entries.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from gateway.codes import SOURCE_TAG_SYSTEM
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, InvalidNhsNumber, validate
from gateway.mappings.source import SourceSystem
from gateway.types import JSON

SUPPORTED_TYPES = frozenset(
    {
        "Patient",
        "Encounter",
        "ServiceRequest",
        "CareTeam",
        "Practitioner",
        "PractitionerRole",
        "RelatedPerson",
        "Observation",
        "Condition",
        "CarePlan",
        "EpisodeOfCare",
        "QuestionnaireResponse",
    }
)
_ALLOWED_METHODS = frozenset({"POST", "PUT"})


@dataclass(frozen=True)
class EntryResult:
    index: int  # position in Bundle.entry, from 0
    resource_type: str | None
    reasons: tuple[str, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class BundleResult:
    """`bundle` holds the tagged entries to apply (None when a transaction is refused)."""

    bundle: JSON | None
    entries: tuple[EntryResult, ...]
    reasons: tuple[str, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        return self.bundle is not None


def map_bundle(bundle: JSON, *, source: SourceSystem) -> BundleResult:
    """Check and tag a provider's Bundle; the input is left unchanged."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return BundleResult(None, (), ("not a Bundle",))
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        return BundleResult(None, (), (f"Bundle.type must be transaction or batch, not {kind!r}",))
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        return BundleResult(None, (), ("Bundle.entry is not a list",))

    results: list[EntryResult] = []
    kept: list[JSON] = []
    for index, entry in enumerate(raw_entries):
        checked, reasons = _check_entry(entry)
        rtype = checked["resource"].get("resourceType") if checked else _type_of(entry)
        results.append(EntryResult(index, rtype, tuple(reasons)))
        if checked is not None:
            kept.append(_tagged(checked, source))

    refused = [r for r in results if not r.accepted]
    if kind == "transaction" and refused:
        return BundleResult(None, tuple(results), (f"{len(refused)} of {len(results)} entries refused",))
    out = {k: v for k, v in bundle.items() if k != "entry"}
    out["entry"] = kept
    return BundleResult(out, tuple(results))


def _type_of(entry: object) -> str | None:
    if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
        rtype = entry["resource"].get("resourceType")
        return rtype if isinstance(rtype, str) else None
    return None


def _check_entry(entry: object) -> tuple[JSON | None, list[str]]:
    if not isinstance(entry, dict):
        return None, ["entry is not an object"]
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        return None, ["entry has no resource"]
    rtype = resource.get("resourceType")
    if rtype not in SUPPORTED_TYPES:
        return None, [f"resource type {rtype!r} is not accepted from a community provider"]
    reasons: list[str] = []
    method = (entry.get("request") or {}).get("method")
    if method not in _ALLOWED_METHODS:
        reasons.append(f"request.method {method!r} is not allowed (POST or PUT only)")
    try:
        get_fhir_model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        reasons += [f"{rtype}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
    identifiers = resource.get("identifier") if rtype == "Patient" else None
    for ident in identifiers if isinstance(identifiers, list) else []:
        if isinstance(ident, dict) and ident.get("system") == NHS_NUMBER_SYSTEM:
            try:
                validate(str(ident.get("value", "")))
            except InvalidNhsNumber as exc:
                reasons.append(f"Patient.identifier: {exc}")
    return (None, reasons) if reasons else (entry, [])


def _tagged(entry: JSON, source: SourceSystem) -> JSON:
    out = copy.deepcopy(entry)
    meta = out["resource"].setdefault("meta", {})
    tags = meta.setdefault("tag", [])
    tag = {"system": SOURCE_TAG_SYSTEM, "code": source.source_id}
    # A provider may not claim another source's tag; replace any it sent with its own.
    meta["tag"] = [t for t in tags if t.get("system") != SOURCE_TAG_SYSTEM] + [tag]
    return out
