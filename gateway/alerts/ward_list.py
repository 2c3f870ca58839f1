"""The night-shift ward list: who is on a virtual ward, for one receiving organisation.

Hospitals and out-of-hours services load this list so their staff recognise a case-managed person
on arrival, even before an alert. Pure: registry entries and the Patient / care manager / CareTeam
resources in; rows, a FHIR `List` (snapshot) and `Group` (actual members), or CSV out. Consent is
the caller's: it passes `visible(patient_id)`, bound to the receiving organisation's access
decision, and a person it may not see is left out entirely (not counted, not hinted at).

CSV (RFC 4180, CRLF, UTF-8, header row, one row per episode, sorted by name then patient id):

| column           | content                                                                  |
|------------------|--------------------------------------------------------------------------|
| nhs_number       | NHS number (https://fhir.nhs.uk/Id/nhs-number), empty if unknown         |
| hospital_numbers | other identifiers' values, `;`-separated (optionally only given systems) |
| name             | official/first name, "Given Family"                                      |
| birth_date       | YYYY-MM-DD                                                               |
| ward             | ward name                                                                |
| case_manager     | case manager's name                                                      |
| contact          | team's single point of contact, else the case manager's phone            |
| care_plan_id     | CarePlan logical id                                                      |
| enrolled_since   | episode start date (YYYY-MM-DD)                                          |

Hospital numbers held on other linked Patient records are the caller's to merge into the Patient
passed in (the identity module knows the links; this module does not read the store).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import datetime

from gateway.alerts.content import contact_for, person_name
from gateway.alerts.registry import CaseManagedEntry, ref_id
from gateway.codes import CANONICAL_BASE, NHS_NUMBER_SYSTEM
from gateway.types import JSON

WARD_LIST_TAG_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/ward-list"


@dataclass(frozen=True)
class WardListRow:
    patient_id: str
    nhs_number: str
    hospital_numbers: str
    name: str
    birth_date: str
    ward: str
    case_manager: str
    contact: str
    care_plan_id: str
    enrolled_since: str


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(WardListRow) if f.name != "patient_id")


def _patient_name(patient: JSON) -> str:
    names = patient.get("name") or []
    official = [n for n in names if n.get("use") == "official"] or names
    for name in official:
        if name.get("text"):
            return str(name["text"])
        joined = " ".join([*name.get("given", []), name.get("family", "")]).strip()
        if joined:
            return joined
    return ""


def _identifiers(patient: JSON, systems: Collection[str] | None) -> tuple[str, str]:
    nhs = ""
    others: list[str] = []
    for ident in patient.get("identifier") or []:
        value, system = ident.get("value"), ident.get("system")
        if not value:
            continue
        if system == NHS_NUMBER_SYSTEM:
            nhs = nhs or str(value)
        elif systems is None or system in systems:
            others.append(str(value))
    return nhs, ";".join(sorted(set(others)))


def ward_rows(
    entries: Iterable[CaseManagedEntry],
    *,
    patients: Mapping[str, JSON],
    care_managers: Mapping[str, JSON],
    teams: Mapping[str, JSON] | None = None,
    visible: Callable[[str], bool],
    hospital_number_systems: Collection[str] | None = None,
) -> list[WardListRow]:
    """One row per visible entry. `care_managers` / `teams` are keyed by reference (`Practitioner/x`)."""
    rows: list[WardListRow] = []
    for entry in entries:
        patient = patients.get(entry.patient_id)
        if patient is None or not visible(entry.patient_id):
            continue
        manager = care_managers.get(entry.care_manager)
        team = next((t for r in entry.teams if (t := (teams or {}).get(r))), None)
        nhs, hospital = _identifiers(patient, hospital_number_systems)
        rows.append(
            WardListRow(
                patient_id=entry.patient_id,
                nhs_number=nhs,
                hospital_numbers=hospital,
                name=_patient_name(patient),
                birth_date=str(patient.get("birthDate", "")),
                ward=entry.ward_name,
                case_manager=person_name(manager) or entry.care_manager_display or "",
                contact=contact_for(manager, team) or "",
                care_plan_id=ref_id(entry.care_plan) or "",
                enrolled_since=(entry.since or "")[:10],
            )
        )
    return sorted(rows, key=lambda r: (r.name.casefold(), r.patient_id))


def to_csv(rows: Iterable[WardListRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(astuple(row)[1:])
    return out.getvalue()


def _list_id(ward_id: str, organisation_ref: str, now: datetime) -> str:
    return f"ward-list-{ward_id}-{ref_id(organisation_ref) or 'all'}-{now.strftime('%Y%m%d')}"[:64]


def to_fhir_list(
    rows: Iterable[WardListRow],
    *,
    ward_id: str,
    ward_name: str,
    organisation_ref: str,
    source_ref: str,
    now: datetime,
) -> JSON:
    """A snapshot `List` of the ward as the receiving organisation may see it tonight."""
    entries = [
        {
            "item": {"reference": f"Patient/{r.patient_id}", "display": r.name},
            **({"date": r.enrolled_since} if r.enrolled_since else {}),
        }
        for r in rows
    ]
    resource: JSON = {
        "resourceType": "List",
        "id": _list_id(ward_id, organisation_ref, now),
        "meta": {"tag": [{"system": WARD_LIST_TAG_SYSTEM, "code": ward_id}]},
        "status": "current",
        "mode": "snapshot",
        "title": f"{ward_name}: ward list for {organisation_ref}",
        "code": {"text": "virtual ward list"},
        "date": now.isoformat(timespec="seconds"),
        "source": {"reference": source_ref},
        "orderedBy": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/list-order", "code": "alphabetic"}]},
    }
    if entries:
        resource["entry"] = entries
    else:
        resource["emptyReason"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason", "code": "nilknown"}]
        }
    return resource


def to_group(
    rows: Iterable[WardListRow], *, ward_id: str, ward_name: str, organisation_ref: str, now: datetime
) -> JSON:
    """The same people as an actual `Group` (what `Group/$export`-style consumers expect)."""
    members = [
        {
            "entity": {"reference": f"Patient/{r.patient_id}"},
            **({"period": {"start": r.enrolled_since}} if r.enrolled_since else {}),
        }
        for r in rows
    ]
    group: JSON = {
        "resourceType": "Group",
        "id": _list_id(ward_id, organisation_ref, now).replace("ward-list-", "ward-group-", 1)[:64],
        "meta": {"tag": [{"system": WARD_LIST_TAG_SYSTEM, "code": ward_id}]},
        "type": "person",
        "actual": True,
        "name": ward_name,
        "quantity": len(members),
    }
    if members:
        group["member"] = members
    return group
