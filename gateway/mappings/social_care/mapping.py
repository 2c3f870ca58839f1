"""Map one CLD row to FHIR R4 resources: pure, deterministic, keyed for conditional update.

What each row becomes:

- Always a **Patient** for the row's person (a carer too: carers are people in their own right),
  identified by `LA_Person_Unique_Identifier` under the source's `person-id` system, plus the NHS
  number when valid. Gender, birthDate (YYYY-MM from Der_Birth_Year/Month), postcode, date of death,
  GP practice (ODS identifier reference) and ethnicity (extension `asc-ethnicity`).
- On a carer's row with `Cared_For_Person_Unique_Identifier`: a **RelatedPerson** of the cared-for
  person (key: `related-person-id` = "<carer id>|<cared-for id>"; second identifier: the carer's
  own person-id, so the carer's Patient and RelatedPerson can be found from each other).
- With `Allocated_Worker_Id`/`_Name`: a **CareTeam** for the person (key: `care-team-id` =
  "allocated|<person id>"), the worker as a Practitioner referenced by `worker-id` identifier.
- Then by Event_Type, each keyed by `event-id` = `event_key(record)`:
  - *Service* → **EpisodeOfCare** (the care package: type social-care-package + Service_Type,
    managingOrganization = the council, period, status active/finished, careManager/team when the
    worker is known) and **CarePlan** (one activity: Service_Component as code, Delivery_Mechanism
    as extension, Planned_units_per_week as quantity, scheduledPeriod; supportingInfo → the episode).
  - *Assessment* → **QuestionnaireResponse** (questionnaire `asc-assessment`: Assessment_Type,
    Eligible_Needs_Identified, Event_Outcome, Primary_Support_Reason, start/end dates).
  - *Review* → **QuestionnaireResponse** (questionnaire `asc-review`: Review_Reason,
    Review_Outcomes_Achieved, Event_Outcome, dates). A review is a record of what was found, not a
    new plan, so it does not rewrite the CarePlan.
  - *Request* → **ServiceRequest** (a request for support made to the council; route of access
    and outcome as extensions, status active/completed).

Event resources carry the row's other coded context (Client_Type, Primary_Support_Reason,
Accommodation_Status, Employment_Status, Has_Unpaid_Carer, Event_Outcome, Request_Route_of_Access)
as extensions `<EXT_BASE>/asc-<column>` with the defined-list coding. An event is closed when it
has an Event_End_Date or an outcome that ends it (NFA…, Service ended as planned): then the status
becomes finished/completed. Every resource refers to people by identifier, never by id: the intake
links identifiers to Patients. Every resource carries the source tag. Not mapped: Unit_Cost,
Provider_CQC_Location_ID, Client_Funding_Status, reporting period dates.
"""

from __future__ import annotations

from decimal import Decimal

from gateway.codes import EPISODE_TYPE_SYSTEM, EXT_BASE, ODS_SYSTEM, SOCIAL_CARE_PACKAGE, SOURCE_TAG_SYSTEM
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM
from gateway.mappings.social_care import columns as c
from gateway.mappings.social_care.event_key import event_key
from gateway.mappings.social_care.questionnaires import ASSESSMENT_QUESTIONNAIRE, REVIEW_QUESTIONNAIRE
from gateway.mappings.social_care.readers import SourceRow
from gateway.mappings.social_care.record import CldRecord, parse_row
from gateway.mappings.social_care.result import Accepted, Rejected, RowResult
from gateway.mappings.social_care.values import Concept
from gateway.mappings.source import SourceSystem
from gateway.types import JSON

# Coded context carried as extensions on the event resource.
_CONTEXT_COLUMNS = (
    c.CLIENT_TYPE, c.PRIMARY_SUPPORT_REASON, c.ACCOMMODATION_STATUS, c.EMPLOYMENT_STATUS,
    c.HAS_UNPAID_CARER, c.EVENT_OUTCOME, c.ROUTE_OF_ACCESS,
)  # fmt: skip


def extension_url(column: str) -> str:
    return f"{EXT_BASE}/asc-{column.lower().replace('_', '-')}"


def map_row(row: SourceRow, *, source: SourceSystem) -> RowResult:
    """Accepted(resources, event_key, warnings) or Rejected(reasons) for one extract row."""
    record, reasons, warnings = parse_row(row)
    if record is None:
        return Rejected(row.row_number, tuple(reasons))
    return Accepted(row.row_number, map_record(record, source=source), event_key(record), tuple(warnings))


def map_record(record: CldRecord, *, source: SourceSystem) -> tuple[JSON, ...]:
    m = _Mapper(record, source)
    resources = [m.patient()]
    if record.is_carer and record.cared_for_id:
        resources.append(m.related_person())
    if record.worker_id or record.worker_name:
        resources.append(m.care_team())
    event = record.event_type.display
    if event == "Service":
        resources += [m.episode_of_care(), m.care_plan()]
    elif event == "Assessment":
        resources.append(m.questionnaire_response(ASSESSMENT_QUESTIONNAIRE))
    elif event == "Review":
        resources.append(m.questionnaire_response(REVIEW_QUESTIONNAIRE))
    else:
        resources.append(m.service_request())
    return tuple(resources)


class _Mapper:
    def __init__(self, record: CldRecord, source: SourceSystem) -> None:
        self.rec = record
        self.source = source
        self.key = event_key(record)

    # -- shared pieces ----------------------------------------------------------------------

    def ident(self, kind: str, value: str) -> JSON:
        return {"system": self.source.identifier_system(kind), "value": value}

    def person_ref(self, person_id: str | None = None) -> JSON:
        return {"type": "Patient", "identifier": self.ident("person-id", person_id or self.rec.person_id)}

    def meta(self) -> JSON:
        return {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": self.source.source_id}]}

    def org_ref(self) -> JSON | None:
        return {"reference": self.source.organization} if self.source.organization else None

    def period(self) -> JSON:
        p = {"start": self.rec.event_start.isoformat()}
        if self.rec.event_end:
            p["end"] = self.rec.event_end.isoformat()
        return p

    def event_identifier(self) -> JSON:
        return self.ident("event-id", self.key)

    def worker_ref(self) -> JSON | None:
        if not (self.rec.worker_id or self.rec.worker_name):
            return None
        ref: JSON = {"type": "Practitioner"}
        if self.rec.worker_id:
            ref["identifier"] = self.ident("worker-id", self.rec.worker_id)
        if self.rec.worker_name:
            ref["display"] = self.rec.worker_name
        return ref

    def team_ref(self) -> JSON:
        return {"type": "CareTeam", "identifier": self.ident("care-team-id", f"allocated|{self.rec.person_id}")}

    def context_extensions(self) -> list[JSON]:
        return [
            {"url": extension_url(col), "valueCoding": concept.coding()}
            for col in _CONTEXT_COLUMNS
            if (concept := self.rec.code(col)) is not None
        ]

    def base(self, resource_type: str, identifiers: list[JSON]) -> JSON:
        return {"resourceType": resource_type, "meta": self.meta(), "identifier": identifiers}

    # -- people -----------------------------------------------------------------------------

    def demographics(self, resource: JSON) -> JSON:
        if (gender := self.rec.code(c.GENDER)) is not None:
            resource["gender"] = gender.properties["fhir-gender"]
        if self.rec.birth_date:
            resource["birthDate"] = self.rec.birth_date
        if self.rec.postcode:
            resource["address"] = [{"use": "home", "postalCode": self.rec.postcode}]
        return resource

    def patient(self) -> JSON:
        identifiers = [self.ident("person-id", self.rec.person_id)]
        if self.rec.nhs_number:
            identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": self.rec.nhs_number})
        p = self.demographics(self.base("Patient", identifiers))
        if (ethnicity := self.rec.code(c.ETHNICITY)) is not None:
            p["extension"] = [{"url": extension_url(c.ETHNICITY), "valueCodeableConcept": ethnicity.codeable()}]
        if self.rec.date_of_death:
            p["deceasedDateTime"] = self.rec.date_of_death.isoformat()
        if self.rec.gp_practice:
            p["generalPractitioner"] = [
                {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": self.rec.gp_practice}}
            ]
        return p

    def related_person(self) -> JSON:
        assert self.rec.cared_for_id
        rp = self.base(
            "RelatedPerson",
            [
                self.ident("related-person-id", f"{self.rec.person_id}|{self.rec.cared_for_id}"),
                self.ident("person-id", self.rec.person_id),
            ],
        )
        rp["active"] = self.rec.date_of_death is None
        rp["patient"] = self.person_ref(self.rec.cared_for_id)
        rp["relationship"] = [{"coding": [self.rec.client_type.coding()], "text": "Unpaid carer"}]
        return self.demographics(rp)

    def care_team(self) -> JSON:
        ct = self.base("CareTeam", [self.team_ref()["identifier"]])
        ct["status"] = "active"
        ct["name"] = "Allocated social care worker"
        ct["subject"] = self.person_ref()
        participant: JSON = {"role": [{"text": "Allocated worker"}], "member": self.worker_ref()}
        if org := self.org_ref():
            participant["onBehalfOf"] = org
            ct["managingOrganization"] = [org]
        ct["participant"] = [participant]
        return ct

    # -- events -----------------------------------------------------------------------------

    def episode_of_care(self) -> JSON:
        service_type = self.rec.code(c.SERVICE_TYPE)
        assert service_type is not None  # mandatory on Service rows
        eoc = self.base("EpisodeOfCare", [self.event_identifier()])
        eoc["status"] = "finished" if self.rec.closed else "active"
        eoc["type"] = [
            {
                "coding": [
                    {"system": EPISODE_TYPE_SYSTEM, "code": SOCIAL_CARE_PACKAGE, "display": "Social care package"}
                ]
            },
            service_type.codeable(),
        ]
        eoc["patient"] = self.person_ref()
        if org := self.org_ref():
            eoc["managingOrganization"] = org
        eoc["period"] = self.period()
        if worker := self.worker_ref():
            eoc["careManager"] = worker
            eoc["team"] = [self.team_ref()]
        return _with_extensions(eoc, self.context_extensions())

    def care_plan(self) -> JSON:
        service_type = self.rec.code(c.SERVICE_TYPE)
        assert service_type is not None
        component = self.rec.code(c.SERVICE_COMPONENT)
        detail: JSON = {
            "code": (component or service_type).codeable(),
            "status": "completed" if self.rec.closed else "in-progress",
            "scheduledPeriod": self.period(),
        }
        if (mechanism := self.rec.code(c.DELIVERY_MECHANISM)) is not None:
            detail["extension"] = [{"url": extension_url(c.DELIVERY_MECHANISM), "valueCoding": mechanism.coding()}]
        if self.rec.planned_units is not None:
            detail["quantity"] = {"value": _number(self.rec.planned_units), "unit": "units per week"}
        if org := self.org_ref():
            detail["performer"] = [org]
        cp = self.base("CarePlan", [self.event_identifier()])
        cp["status"] = "completed" if self.rec.closed else "active"
        cp["intent"] = "plan"
        cp["category"] = [service_type.codeable()]
        cp["title"] = service_type.display
        cp["subject"] = self.person_ref()
        cp["period"] = self.period()
        if org := self.org_ref():
            cp["author"] = org
        cp["supportingInfo"] = [{"type": "EpisodeOfCare", "identifier": self.event_identifier()}]
        cp["activity"] = [{"detail": detail}]
        return cp

    def questionnaire_response(self, questionnaire: tuple[str, tuple[tuple[str, str, str], ...]]) -> JSON:
        url, questions = questionnaire
        items = [item for link_id, text, column in questions if (item := self.answer(link_id, text, column))]
        qr: JSON = {
            "resourceType": "QuestionnaireResponse",
            "meta": self.meta(),
            "identifier": self.event_identifier(),  # 0..1 on QuestionnaireResponse
            "questionnaire": url,
            "status": "completed" if self.rec.closed else "in-progress",
            "subject": self.person_ref(),
            "authored": (self.rec.event_end or self.rec.event_start).isoformat(),
        }
        if org := self.org_ref():
            qr["author"] = org
        qr["item"] = items
        return _with_extensions(qr, self.context_extensions())

    def answer(self, link_id: str, text: str, column: str) -> JSON | None:
        value: JSON
        if column == c.EVENT_START:
            value = {"valueDate": self.rec.event_start.isoformat()}
        elif column == c.EVENT_END:
            if self.rec.event_end is None:
                return None
            value = {"valueDate": self.rec.event_end.isoformat()}
        else:
            concept = self.rec.code(column)
            if concept is None:
                return None
            value = _answer_value(column, concept)
        return {"linkId": link_id, "text": text, "answer": [value]}

    def service_request(self) -> JSON:
        sr = self.base("ServiceRequest", [self.event_identifier()])
        sr["status"] = "completed" if self.rec.closed else "active"
        sr["intent"] = "order"
        sr["category"] = [self.rec.event_type.codeable()]
        sr["code"] = {"text": "Request for adult social care support"}
        sr["subject"] = self.person_ref()
        sr["occurrencePeriod"] = self.period()
        sr["authoredOn"] = self.rec.event_start.isoformat()
        if org := self.org_ref():
            sr["performer"] = [org]
        if (psr := self.rec.code(c.PRIMARY_SUPPORT_REASON)) is not None:
            sr["reasonCode"] = [psr.codeable()]
        return _with_extensions(sr, self.context_extensions())


def _answer_value(column: str, concept: Concept) -> JSON:
    if column == c.ELIGIBLE_NEEDS:
        return {"valueBoolean": concept.display == "Yes"}
    return {"valueCoding": concept.coding()}


def _with_extensions(resource: JSON, extensions: list[JSON]) -> JSON:
    if extensions:
        resource["extension"] = extensions
    return resource


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
