"""SMART patient context: a `patient/` scope reaches one person's compartment and nothing else.

A caller whose token carries a patient context (`AccessContext.patient`, fixed at client
registration; see `gateway.auth.token_endpoint`) and whose only grant for a type is a `patient/`
scope sees, of that type:
- Patients: the patient in context and every Patient record linked to it (`Patient.link`, either
  direction, transitively): several organisations' records of the same person;
- compartment member types: resources in the compartment of one of those Patients (by the
  shipped Patient CompartmentDefinition);
- other types (Organization, Practitioner, Medication …): only those that name no Patient
  outside the context, so a non-member type cannot smuggle another person's data.

Everything else is dropped before the consent engine sees it, so it answers exactly like a
missing resource. Writes under a `patient/` scope must stay inside the context too, both the new
content and the version it replaces (403 otherwise, and nothing is committed). A Subscription
cannot be written under a `patient/` scope at all: its notifications are decided for the
subscriber's organisation, which would reach beyond the patient in context.

An update (PUT) under a `patient/` scope must replace a live resource inside the context: a PUT
to any other id answers 405, whether that id is free, deleted, or another person's resource,
with the same message (nothing is committed). Creating there with the client's own id (update
as create, conditional update with no match) would be the only answer a free id could get that
another person's id cannot, so a 403 for theirs and a 201 for a free one would tell the caller
that the id exists. 405 is R4's answer for "the resource did not exist prior to the update, and
the server does not allow client defined ids", and a resource outside the context does not
exist for this caller; such a client creates with POST (server-assigned ids).
"""

from __future__ import annotations

from dataclasses import replace

from gateway.auth.context import AccessContext
from gateway.auth.scopes import patient_confined
from gateway.consent.compartment import Compartment, default_compartment, patients_referenced
from gateway.fhir.errors import FhirError, forbidden
from gateway.record.everything import compartment_refs, linked_patient_ids
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.search.query import Criterion, SearchQuery
from gateway.types import JSON

# Repository.visible's interaction -> the scope letter that grants it.
_SCOPE_OF = {"search": "search", "count": "search"}
_WRITE_OF = {"POST": "create", "PUT": "update", "DELETE": "delete"}
_NOTHING = "__none__"


def in_context(resource: JSON, patients: frozenset[str], compartment: Compartment | None = None) -> bool:
    """True when `resource` belongs to (or names no one but) the Patients in context."""
    compartment = compartment or default_compartment()
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        return resource.get("id") in patients
    if isinstance(rtype, str) and compartment.is_member_type(rtype):
        return bool(compartment.patients_of(resource) & patients)
    return patients_referenced(resource) <= patients


class PatientContext:
    """The patient context of one caller; the linked records are looked up once, on first use."""

    def __init__(self, access: AccessContext, *, compartment: Compartment | None = None) -> None:
        if access.patient is None:
            raise ValueError("the access context has no patient")
        self.access = access
        self.patient: str = access.patient
        self.compartment = compartment or default_compartment()
        self._patients: frozenset[str] | None = None

    def patients(self, uow: UnitOfWork) -> frozenset[str]:
        """The patient in context and every Patient record linked to it."""
        if self._patients is None:
            self._patients = frozenset(linked_patient_ids(uow, self.patient))
        return self._patients

    def confines(self, interaction: str, rtype: str) -> bool:
        return patient_confined(self.access.scopes, interaction, rtype)

    def filter(self, uow: UnitOfWork, rows: list[StoredResource], interaction: str) -> list[StoredResource]:
        """The rows this caller's scopes let it reach (tombstones pass: they carry no data)."""
        wanted = _SCOPE_OF.get(interaction, "read")
        return [
            row
            for row in rows
            if row.content is None
            or not self.confines(wanted, row.type)
            or in_context(row.json(), self.patients(uow), self.compartment)
        ]

    def narrow(self, uow: UnitOfWork, q: SearchQuery) -> SearchQuery:
        """`q` cut down to the person's resources by id, so a search costs the size of one record
        rather than of the whole type. Only an optimisation: `filter` still decides every row."""
        rtype = q.resource_type
        if not self.confines("search", rtype) or not (rtype == "Patient" or self.compartment.is_member_type(rtype)):
            return q
        param = uow.store.registry.get(rtype, "_id")
        if param is None:
            return q
        patients = self.patients(uow)
        if rtype == "Patient":
            ids = sorted(patients)
        else:
            ids = sorted(rid for t, rid in compartment_refs(uow, patients, self.compartment) if t == rtype)
        return replace(q, criteria=(*q.criteria, Criterion(param, tuple(ids) or (_NOTHING,))))

    def check_update_target(self, uow: UnitOfWork, rtype: str, rid: str) -> None:
        """Raise FhirError 405 unless `rtype/rid` is a live resource in the context (for a PUT under a
        `patient/` scope, before it writes: an update that would change nothing is refused alike)."""
        if not self.confines("update", rtype):
            return
        current = uow.get(rtype, rid)
        if current is None or current.content is None:
            raise _no_update_as_create()
        if not in_context(current.json(), self.patients(uow), self.compartment):
            raise _no_update_as_create()

    def check_writes(self, uow: UnitOfWork, written: list[StoredResource]) -> None:
        """Raise FhirError when a write under a `patient/` scope leaves the context: 405 for a PUT
        that replaces no live resource of the context (see the module docstring), else 403."""
        for stored in written:
            if not self.confines(_WRITE_OF.get(stored.method, "update"), stored.type):
                continue
            if stored.type == "Subscription":
                raise forbidden("subscriptions need a system/ or user/ scope, not a patient/ one")
            if stored.method == "PUT":
                replaced = _replaced(uow, stored)
                if replaced is None or not in_context(replaced, self.patients(uow), self.compartment):
                    raise _no_update_as_create()
            if stored.content is not None and not in_context(stored.json(), self.patients(uow), self.compartment):
                raise forbidden(f"{stored.type} is outside the patient context of this token")
            if stored.version_id > 1:
                before = _previous(uow, stored)
                if before is not None and not in_context(before, self.patients(uow), self.compartment):
                    raise forbidden(f"{stored.type} is outside the patient context of this token")


def _no_update_as_create() -> FhirError:
    """The one answer to a PUT that would not update a live resource in the context (same text for all)."""
    return FhirError(
        "not-supported",
        "under a patient/ scope, PUT only updates an existing resource of the patient in context; create with POST",
        status=405,
    )


def _replaced(uow: UnitOfWork, stored: StoredResource) -> JSON | None:
    """The live content `stored` replaced (None when it replaced nothing, or a tombstone)."""
    if stored.version_id <= 1:
        return None
    try:
        prior = uow.vread(stored.type, stored.id, stored.version_id - 1)
    except FhirError:  # a tombstone (410)
        return None
    return prior.json() if prior.content is not None else None


def _previous(uow: UnitOfWork, stored: StoredResource) -> JSON | None:
    for version in range(stored.version_id - 1, 0, -1):  # skip tombstones back to the last content
        try:
            prior = uow.vread(stored.type, stored.id, version)
        except FhirError:  # a tombstone (410) carries no data
            continue
        if prior.content is not None:
            return prior.json()
    return None
