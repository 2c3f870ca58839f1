"""Information-sharing agreements between organisations, as FHIR `Basic` resources.

Why `Basic`: an agreement is organisation-level policy, not a person's Consent (R4 Consent with
scope patient-privacy must name a patient), and `Contract` is far larger than what is needed.
A `Basic` with a closed set of extensions is stored, versioned, searched, audited and managed
through the same FHIR API as everything else (`POST /Basic`), and the CLI builds the same JSON
with `build_agreement`. Changing one bumps its content fingerprint, which is part of the
decision cache key.

Shape (all extension URLs are `<EXT_BASE>/isa-<name>`; repeatable ones are OR-ed, elements AND-ed,
an omitted optional element means "no limit"):

    Basic.code          AGREEMENT_CODE_SYSTEM#information-sharing-agreement   (required)
    isa-status          valueCode     draft | active | suspended | retired     1..1
    isa-period          valuePeriod   when it is in force                       0..1
    isa-recipient       valueReference(Organization)  who may receive           1..*
    isa-source          valueReference(Organization)  whose data; none = any    0..*
    isa-purpose         valueCoding   v3-ActReason purposes of use              1..*
    isa-resource-type   valueCode     FHIR resource types; none = any           0..*
    isa-category        valueCoding   a code in the resource's `category`       0..*
    isa-security-label  valueCoding   labels the recipient may receive (not V)  0..*
    isa-break-glass     valueBoolean  recipients may break glass under it       0..1

A resource's source organisation is the `meta.tag` with system `SOURCE_ORGANIZATION_TAG_SYSTEM`
and code = the Organization id; the store stamps it at write time (intake: the sending
`SourceSystem.organization`; REST writes: the client's organisation). Untagged data has no
known source and is admitted only by agreements with no `isa-source`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.codes import CANONICAL_BASE, EXT_BASE, V3_ACT_REASON, V3_CONFIDENTIALITY
from gateway.consent.fhirtime import FhirTimeError, covers, period_interval
from gateway.consent.labels import Label, codings_to_labels
from gateway.consent.refs import normalise
from gateway.paths import PROFILES_DIR
from gateway.types import JSON

AGREEMENT_CODE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/policy-kind"
AGREEMENT_CODE = "information-sharing-agreement"
ISA_EXT = f"{EXT_BASE}/isa-"
SOURCE_ORGANIZATION_TAG_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/source-organization"
AGREEMENTS_DIR = PROFILES_DIR / "policy" / "agreements"
STATUSES = frozenset({"draft", "active", "suspended", "retired"})

_VALUE_KEY = {
    "status": "valueCode",
    "period": "valuePeriod",
    "recipient": "valueReference",
    "source": "valueReference",
    "purpose": "valueCoding",
    "resource-type": "valueCode",
    "category": "valueCoding",
    "security-label": "valueCoding",
    "break-glass": "valueBoolean",
}
_SINGLE = frozenset({"status", "period", "break-glass"})


class AgreementError(ValueError):
    """An agreement resource is invalid; `problems` lists every fault found, each naming its element."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid information-sharing agreement: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Agreement:
    """One parsed agreement. `ref` is `Basic/<id>`; `fingerprint` changes whenever the content does."""

    ref: str
    fingerprint: str
    status: str
    period: JSON | None
    recipients: frozenset[str]
    sources: frozenset[str]
    purposes: frozenset[str]
    resource_types: frozenset[str]
    categories: frozenset[Label]
    security_labels: frozenset[Label]
    break_glass: bool
    title: str | None = None

    def in_force(self, now: datetime) -> bool:
        return self.status == "active" and covers(self.period, now)

    def admits(
        self,
        organization: str | None,
        purposes: frozenset[str],
        resource_type: str,
        categories: frozenset[Label],
        source_orgs: frozenset[str],
    ) -> bool:
        """True when this agreement lets `organization` receive such data (period checked separately)."""
        if organization is None or normalise(organization) not in self.recipients:
            return False
        if not purposes & self.purposes:
            return False
        if self.resource_types and resource_type not in self.resource_types:
            return False
        if self.categories and not any(_coding_in(c, self.categories) for c in categories):
            return False
        return not self.sources or bool(source_orgs & self.sources)


def _coding_in(label: Label, allowed: frozenset[Label]) -> bool:
    return label in allowed or ("", label[1]) in allowed


def source_organizations(resource: JSON) -> frozenset[str]:
    """`Organization/<id>` refs from the source-organization meta.tag (see module docstring)."""
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return frozenset()
    found = set()
    for tag in meta.get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == SOURCE_ORGANIZATION_TAG_SYSTEM and tag.get("code"):
            code = str(tag["code"])
            found.add(code if code.startswith("Organization/") else f"Organization/{code}")
    return frozenset(found)


def source_organization(resource: JSON) -> str | None:
    """The source organisation (`Organization/<id>`) of a resource the gateway stamped (it keeps one
    tag); None when it has none. Several (a tag set by hand) give the first in order."""
    found = source_organizations(resource)
    return min(found) if found else None


def categories_of(resource: JSON) -> frozenset[Label]:
    """(system, code) pairs from the resource's top-level `category` (one CodeableConcept or a list)."""
    value = resource.get("category")
    concepts = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return codings_to_labels(c for cc in concepts if isinstance(cc, dict) for c in cc.get("coding") or ())


def _is_resource_type(code: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        return issubclass(get_fhir_model_class(code), Resource)
    except (KeyError, ValueError, AttributeError, ImportError):
        return False


def fingerprint(resource: JSON) -> str:
    """A stable content hash (meta excluded except versionId) used in cache keys."""
    body = {k: v for k, v in resource.items() if k != "meta"}
    body["_v"] = (resource.get("meta") or {}).get("versionId")
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def parse_agreement(resource: JSON) -> Agreement:
    """Validate a `Basic` agreement and return it parsed. Raises AgreementError listing every problem."""
    problems: list[str] = []
    if resource.get("resourceType") != "Basic":
        raise AgreementError(["resourceType must be 'Basic'"])
    codings = (resource.get("code") or {}).get("coding") or []
    if not any(c.get("system") == AGREEMENT_CODE_SYSTEM and c.get("code") == AGREEMENT_CODE for c in codings):
        problems.append(f"Basic.code must include {AGREEMENT_CODE_SYSTEM}#{AGREEMENT_CODE}")
    values: dict[str, list[Any]] = {name: [] for name in _VALUE_KEY}
    for ext in resource.get("extension") or []:
        url = str(ext.get("url", ""))
        if not url.startswith(ISA_EXT):
            continue
        name = url[len(ISA_EXT) :]
        if name not in _VALUE_KEY:
            problems.append(f"unknown agreement extension {url!r}")
            continue
        key = _VALUE_KEY[name]
        if key not in ext:
            problems.append(f"isa-{name} needs {key}")
            continue
        values[name].append(ext[key])
    for name in _SINGLE:
        if len(values[name]) > 1:
            problems.append(f"isa-{name} may appear at most once")

    status = values["status"][0] if values["status"] else None
    if status not in STATUSES:
        problems.append(f"isa-status must be one of {sorted(STATUSES)}, got {status!r}")
    period = values["period"][0] if values["period"] else None
    if period is not None:
        try:
            start, end = period_interval(period)
            if end <= start:
                problems.append("isa-period ends before it starts")
        except (FhirTimeError, TypeError):
            problems.append("isa-period has a malformed start or end")

    recipients = _org_refs(values["recipient"], "isa-recipient", problems)
    if not recipients:
        problems.append("at least one isa-recipient (Organization reference) is required")
    sources = _org_refs(values["source"], "isa-source", problems)

    purposes: set[str] = set()
    for coding in values["purpose"]:
        if not isinstance(coding, dict) or not coding.get("code"):
            problems.append("isa-purpose needs a code")
        elif coding.get("system") not in (None, V3_ACT_REASON):
            problems.append(f"isa-purpose must be a v3-ActReason code, got system {coding.get('system')!r}")
        else:
            purposes.add(coding["code"])
    if not purposes:
        problems.append("at least one isa-purpose (v3-ActReason, e.g. TREAT) is required")

    types = set()
    for code in values["resource-type"]:
        if not isinstance(code, str) or not _is_resource_type(code):
            problems.append(f"isa-resource-type {code!r} is not a FHIR resource type")
        else:
            types.add(code)

    labels = codings_to_labels(values["security-label"])
    if any(system in ("", V3_CONFIDENTIALITY) and code == "V" for system, code in labels):
        problems.append("isa-security-label may not list V: very restricted data needs the person's Consent")
    break_glass = values["break-glass"][0] if values["break-glass"] else False
    if not isinstance(break_glass, bool):
        problems.append("isa-break-glass must be a boolean")

    if problems:
        raise AgreementError(problems)
    rid = resource.get("id")
    return Agreement(
        ref=f"Basic/{rid}" if rid else "Basic/(unsaved)",
        fingerprint=fingerprint(resource),
        status=str(status),
        period=period,
        recipients=frozenset(recipients),
        sources=frozenset(sources),
        purposes=frozenset(purposes),
        resource_types=frozenset(types),
        categories=codings_to_labels(values["category"]),
        security_labels=labels,
        break_glass=bool(break_glass),
        title=(resource.get("code") or {}).get("text"),
    )


def _org_refs(values: list[Any], name: str, problems: list[str]) -> set[str]:
    refs = set()
    for value in values:
        ref = normalise(str(value.get("reference", ""))) if isinstance(value, dict) else None
        if ref is None or not ref.startswith("Organization/"):
            problems.append(f"{name} must reference an Organization, got {value!r}")
        else:
            refs.add(ref)
    return refs


def build_agreement(
    *,
    id: str | None,
    recipients: Iterable[str],
    purposes: Iterable[str],
    sources: Iterable[str] = (),
    resource_types: Iterable[str] = (),
    categories: Iterable[Label] = (),
    security_labels: Iterable[Label] = (),
    period: JSON | None = None,
    status: str = "active",
    break_glass: bool = False,
    title: str | None = None,
) -> JSON:
    """The `Basic` JSON for an agreement (what the CLI posts). Validate it with `parse_agreement`."""

    def ext(name: str, value: Any) -> JSON:
        return {"url": ISA_EXT + name, _VALUE_KEY[name]: value}

    extensions = [ext("status", status)]
    if period:
        extensions.append(ext("period", period))
    extensions += [ext("recipient", {"reference": r}) for r in recipients]
    extensions += [ext("source", {"reference": s}) for s in sources]
    extensions += [ext("purpose", {"system": V3_ACT_REASON, "code": p}) for p in purposes]
    extensions += [ext("resource-type", t) for t in resource_types]
    extensions += [ext("category", _coding(c)) for c in categories]
    extensions += [ext("security-label", _coding(lbl)) for lbl in security_labels]
    if break_glass:
        extensions.append(ext("break-glass", True))
    code: JSON = {"coding": [{"system": AGREEMENT_CODE_SYSTEM, "code": AGREEMENT_CODE}]}
    if title:
        code["text"] = title
    resource: JSON = {"resourceType": "Basic", "code": code, "extension": extensions}
    if id:
        resource["id"] = id
    return resource


def _coding(label: Label) -> JSON:
    system, code = label
    return {"system": system, "code": code} if system else {"code": code}


def load_agreements(directory: Path = AGREEMENTS_DIR) -> list[Agreement]:
    """Parse every `*.json` agreement in a directory (demo seeds). Raises AgreementError naming the file."""
    agreements = []
    for path in sorted(directory.glob("*.json")):
        try:
            agreements.append(parse_agreement(json.loads(path.read_text(encoding="utf-8"))))
        except AgreementError as exc:
            raise AgreementError([f"{path.name}: {p}" for p in exc.problems]) from exc
    return agreements
