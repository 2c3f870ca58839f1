"""The patient compartment as data: which Patients a resource belongs to.

The list of member types and their linking search parameters is read from
`profiles/CompartmentDefinition-patient.json` (R4 shape). A compartment parameter is a FHIRPath
expression in the spec (`Encounter.subject.where(resolve() is Patient)`); the consent engine only
needs the element it walks, so `PARAM_PATHS` below maps each (type, param) to element paths.
The loader refuses a compartment that names a parameter without a path, so the data file and
this table cannot drift apart silently.

Only literal references count (`Patient/1`, absolute or versioned). A reference by identifier
alone, a contained patient, or a Provenance whose target is (say) an Encounter do not make a
resource a member here: the PDP's fallback for such cases is documented in `pdp.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gateway.consent.refs import all_references, references_at
from gateway.paths import PROFILES_DIR
from gateway.types import JSON

COMPARTMENT_FILE = PROFILES_DIR / "CompartmentDefinition-patient.json"

# (resource type, compartment param) -> element paths whose References may name the Patient.
PARAM_PATHS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("Patient", "link"): (("link", "other"),),
    ("AllergyIntolerance", "patient"): (("patient",),),
    ("AllergyIntolerance", "recorder"): (("recorder",),),
    ("AllergyIntolerance", "asserter"): (("asserter",),),
    ("Appointment", "actor"): (("participant", "actor"),),
    ("AuditEvent", "patient"): (("agent", "who"), ("entity", "what")),
    ("Basic", "patient"): (("subject",),),
    ("Basic", "author"): (("author",),),
    ("CarePlan", "patient"): (("subject",),),
    ("CarePlan", "performer"): (("activity", "detail", "performer"),),
    ("CareTeam", "patient"): (("subject",),),
    ("CareTeam", "participant"): (("participant", "member"),),
    ("ClinicalImpression", "subject"): (("subject",),),
    ("Communication", "subject"): (("subject",),),
    ("Communication", "sender"): (("sender",),),
    ("Communication", "recipient"): (("recipient",),),
    ("CommunicationRequest", "subject"): (("subject",),),
    ("CommunicationRequest", "sender"): (("sender",),),
    ("CommunicationRequest", "recipient"): (("recipient",),),
    ("CommunicationRequest", "requester"): (("requester",),),
    ("Composition", "subject"): (("subject",),),
    ("Composition", "author"): (("author",),),
    ("Composition", "attester"): (("attester", "party"),),
    ("Condition", "patient"): (("subject",),),
    ("Condition", "asserter"): (("asserter",),),
    ("Consent", "patient"): (("patient",),),
    ("DetectedIssue", "patient"): (("patient",),),
    ("Device", "patient"): (("patient",),),
    ("DiagnosticReport", "subject"): (("subject",),),
    ("DocumentReference", "subject"): (("subject",),),
    ("DocumentReference", "author"): (("author",),),
    ("Encounter", "patient"): (("subject",),),
    ("EpisodeOfCare", "patient"): (("patient",),),
    ("FamilyMemberHistory", "patient"): (("patient",),),
    ("Flag", "patient"): (("subject",),),
    ("Goal", "patient"): (("subject",),),
    ("Group", "member"): (("member", "entity"),),
    ("Immunization", "patient"): (("patient",),),
    ("List", "subject"): (("subject",),),
    ("List", "source"): (("source",),),
    ("MedicationRequest", "subject"): (("subject",),),
    ("MedicationStatement", "subject"): (("subject",),),
    ("Observation", "subject"): (("subject",),),
    ("Observation", "performer"): (("performer",),),
    ("Person", "patient"): (("link", "target"),),
    ("Procedure", "patient"): (("subject",),),
    ("Procedure", "performer"): (("performer", "actor"),),
    ("Provenance", "patient"): (("target",),),
    ("QuestionnaireResponse", "subject"): (("subject",),),
    ("QuestionnaireResponse", "author"): (("author",),),
    ("RelatedPerson", "patient"): (("patient",),),
    ("RiskAssessment", "subject"): (("subject",),),
    ("ServiceRequest", "subject"): (("subject",),),
    ("ServiceRequest", "performer"): (("performer",),),
    ("Task", "patient"): (("for",),),
    ("Task", "owner"): (("owner",),),
    ("Task", "requester"): (("requester",),),
}


class CompartmentError(ValueError):
    """The compartment data file is malformed or names a parameter with no element path."""


@dataclass(frozen=True)
class Compartment:
    """Member types and their linking parameters, as loaded from the CompartmentDefinition."""

    version: str
    params: dict[str, tuple[str, ...]]

    def is_member_type(self, resource_type: str) -> bool:
        return resource_type in self.params

    def patients_of(self, resource: JSON) -> set[str]:
        """Patient ids the resource belongs to (empty for non-member types and unlinked resources)."""
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or rtype not in self.params:
            return set()
        found: set[str] = set()
        if rtype == "Patient" and isinstance(resource.get("id"), str):
            found.add(resource["id"])
        for param in self.params[rtype]:
            for path in PARAM_PATHS[(rtype, param)]:
                found.update(_patient_id(ref) for ref in references_at(resource, path) if _is_patient(ref))
        return found


def _is_patient(ref: str) -> bool:
    return ref.startswith("Patient/")


def _patient_id(ref: str) -> str:
    return ref.split("/", 1)[1]


def patients_referenced(resource: JSON) -> set[str]:
    """Every Patient a resource names anywhere: the PDP's safety net for types outside the compartment."""
    return {_patient_id(ref) for ref in all_references(resource) if _is_patient(ref)}


def parse_compartment(definition: JSON) -> Compartment:
    """Build a Compartment from CompartmentDefinition JSON. Raises CompartmentError."""
    if definition.get("resourceType") != "CompartmentDefinition" or definition.get("code") != "Patient":
        raise CompartmentError("expected a CompartmentDefinition with code 'Patient'")
    params: dict[str, tuple[str, ...]] = {}
    for entry in definition.get("resource", []):
        rtype, names = entry.get("code"), tuple(entry.get("param", ()))
        if not isinstance(rtype, str):
            raise CompartmentError("CompartmentDefinition.resource.code is required")
        if not names:
            continue
        missing = [name for name in names if (rtype, name) not in PARAM_PATHS]
        if missing:
            raise CompartmentError(f"{rtype}: no element path for compartment param(s) {missing}")
        params[rtype] = names
    return Compartment(version=str(definition.get("version", "")), params=params)


def load_compartment(path: Path = COMPARTMENT_FILE) -> Compartment:
    return parse_compartment(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_compartment() -> Compartment:
    """The shipped compartment, loaded once."""
    return load_compartment()


def patients_of(resource: JSON) -> set[str]:
    """Patient ids ("Patient/123" -> "123") the resource belongs to, by the shipped compartment."""
    return default_compartment().patients_of(resource)
