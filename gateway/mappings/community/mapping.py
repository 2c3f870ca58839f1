"""Map community-provider JSON records to FHIR R4: contacts → Encounter, referrals → ServiceRequest,
team membership → CareTeam, each with the person's Patient. Pure: record in, resources out.

- Encounter.class (v3 ActCode) follows how the contact happened: home visit → HH, clinic → AMB,
  telephone or video → VR. An out-of-hours or NHS 111 contact is a presentation: its serviceType
  carries SERVICE_TYPE_SYSTEM `out-of-hours` / `nhs-111`, the coding the alert rules look for.
  Community nursing and voluntary-sector contacts are not presentations and carry serviceType text.
- Keys for conditional update (first identifier): `encounter-id`, `referral-id`, `care-team-id` =
  the provider's recordId; Patient by `patient-id` = person.localId (+ NHS number when given).
- People are referenced by identifier (`patient-id`, `practitioner-id`); the intake links them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from gateway.codes import NHS_111, ODS_SYSTEM, OUT_OF_HOURS, SERVICE_TYPE_SYSTEM, SOURCE_TAG_SYSTEM, V3_ACT_CODE
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM
from gateway.mappings.community.records import (
    RECORD_ADAPTER,
    Contact,
    Person,
    Practitioner,
    Referral,
    TeamMembership,
)
from gateway.mappings.source import SourceSystem
from gateway.types import JSON

_CLASS_BY_MODE = {
    "home-visit": ("HH", "home health"),
    "clinic": ("AMB", "ambulatory"),
    "telephone": ("VR", "virtual"),
    "video": ("VR", "virtual"),
}
_PRESENTATION_SERVICES = {
    "out-of-hours": (OUT_OF_HOURS, "Out-of-hours service"),
    "nhs-111": (NHS_111, "NHS 111"),
}
_SERVICE_TEXT = {"community-nursing": "Community nursing", "voluntary-sector": "Voluntary sector"}


@dataclass(frozen=True)
class Accepted:
    record_number: int
    resources: tuple[JSON, ...]
    status: Literal["accepted"] = "accepted"

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(r["resourceType"] for r in self.resources)


@dataclass(frozen=True)
class Rejected:
    record_number: int
    reasons: tuple[str, ...] = field(default=())
    status: Literal["rejected"] = "rejected"


RecordResult = Accepted | Rejected


def map_records(records: Iterable[Any], *, source: SourceSystem) -> Iterator[RecordResult]:
    for number, record in enumerate(records, start=1):
        yield map_record(record, source=source, record_number=number)


def map_record(record: Any, *, source: SourceSystem, record_number: int = 1) -> RecordResult:
    """Validate one record against the published format and map it; reasons name the field at fault."""
    if not isinstance(record, Mapping):
        return Rejected(record_number, ("record is not a JSON object",))
    try:
        parsed = RECORD_ADAPTER.validate_python(record)
    except ValidationError as exc:
        return Rejected(record_number, tuple(_reason(e) for e in exc.errors()))
    m = _Mapper(source)
    if isinstance(parsed, Contact):
        resources = (m.patient(parsed.person), m.encounter(parsed))
    elif isinstance(parsed, Referral):
        resources = (m.patient(parsed.person), m.service_request(parsed))
    else:
        resources = (m.patient(parsed.person), m.care_team(parsed))
    return Accepted(record_number, resources)


def _reason(error: Mapping[str, Any]) -> str:
    # Drop the discriminator tag pydantic puts in the path; never echo the input (may be personal).
    loc = [str(p) for p in error["loc"] if p not in ("contact", "referral", "team-membership")]
    return f"{'.'.join(loc) or 'record'}: {error['msg']}"


class _Mapper:
    def __init__(self, source: SourceSystem) -> None:
        self.source = source

    def ident(self, kind: str, value: str) -> JSON:
        return {"system": self.source.identifier_system(kind), "value": value}

    def base(self, resource_type: str, identifiers: list[JSON]) -> JSON:
        return {
            "resourceType": resource_type,
            "meta": {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": self.source.source_id}]},
            "identifier": identifiers,
        }

    def person_ref(self, person: Person) -> JSON:
        return {"type": "Patient", "identifier": self.ident("patient-id", person.localId)}

    def practitioner_ref(self, p: Practitioner) -> JSON:
        ref: JSON = {"type": "Practitioner"}
        if p.id:
            ref["identifier"] = self.ident("practitioner-id", p.id)
        if p.name:
            ref["display"] = p.name
        return ref

    def org_ref(self) -> JSON | None:
        return {"reference": self.source.organization} if self.source.organization else None

    def patient(self, person: Person) -> JSON:
        identifiers = [self.ident("patient-id", person.localId)]
        if person.nhsNumber:
            identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": person.nhsNumber})
        p = self.base("Patient", identifiers)
        if person.family or person.given:
            name: JSON = {"use": "official"}
            if person.family:
                name["family"] = person.family
            if person.given:
                name["given"] = list(person.given)
            p["name"] = [name]
        if person.gender:
            p["gender"] = person.gender
        if person.birthDate:
            p["birthDate"] = person.birthDate.isoformat()
        if person.postcode:
            p["address"] = [{"use": "home", "postalCode": person.postcode.upper()}]
        return p

    def encounter(self, contact: Contact) -> JSON:
        code, display = _CLASS_BY_MODE[contact.mode]
        enc = self.base("Encounter", [self.ident("encounter-id", contact.recordId)])
        enc["status"] = contact.status
        enc["class"] = {"system": V3_ACT_CODE, "code": code, "display": display}
        if contact.service in _PRESENTATION_SERVICES:
            st_code, st_display = _PRESENTATION_SERVICES[contact.service]
            enc["serviceType"] = {
                "coding": [{"system": SERVICE_TYPE_SYSTEM, "code": st_code, "display": st_display}],
                "text": st_display,
            }
        else:
            enc["serviceType"] = {"text": _SERVICE_TEXT[contact.service]}
        enc["subject"] = self.person_ref(contact.person)
        if contact.practitioner:
            participant: JSON = {"individual": self.practitioner_ref(contact.practitioner)}
            if contact.practitioner.role:
                participant["type"] = [{"text": contact.practitioner.role}]
            enc["participant"] = [participant]
        period = {"start": contact.start.isoformat()}
        if contact.end:
            period["end"] = contact.end.isoformat()
        enc["period"] = period
        if contact.reason:
            enc["reasonCode"] = [{"text": contact.reason}]
        if org := self.org_ref():
            enc["serviceProvider"] = org
        return enc

    def service_request(self, referral: Referral) -> JSON:
        sr = self.base("ServiceRequest", [self.ident("referral-id", referral.recordId)])
        sr["status"] = referral.status
        sr["intent"] = "order"
        sr["priority"] = referral.priority
        sr["code"] = {"text": f"Referral to {referral.toService}"}
        sr["subject"] = self.person_ref(referral.person)
        sr["authoredOn"] = referral.authored.isoformat()
        if referral.fromPractitioner:
            sr["requester"] = self.practitioner_ref(referral.fromPractitioner)
        elif org := self.org_ref():
            sr["requester"] = org
        performer: JSON = {"type": "Organization", "display": referral.toService}
        if referral.toOrganisationOds:
            performer["identifier"] = {"system": ODS_SYSTEM, "value": referral.toOrganisationOds.upper()}
        sr["performer"] = [performer]
        if referral.reason:
            sr["reasonCode"] = [{"text": referral.reason}]
        return sr

    def care_team(self, team: TeamMembership) -> JSON:
        ct = self.base("CareTeam", [self.ident("care-team-id", team.recordId)])
        ct["status"] = team.status
        ct["name"] = team.teamName
        ct["subject"] = self.person_ref(team.person)
        if team.start or team.end:
            ct["period"] = _date_period(team.start, team.end)
        participants = []
        for member in team.members:
            participant: JSON = {"member": self.practitioner_ref(member.practitioner)}
            if member.role or member.practitioner.role:
                participant["role"] = [{"text": member.role or member.practitioner.role}]
            if member.start or member.end:
                participant["period"] = _date_period(member.start, member.end)
            participants.append(participant)
        ct["participant"] = participants
        if org := self.org_ref():
            ct["managingOrganization"] = [org]
        return ct


def _date_period(start: dt.date | None, end: dt.date | None) -> JSON:
    period: JSON = {}
    if start:
        period["start"] = start.isoformat()
    if end:
        period["end"] = end.isoformat()
    return period
