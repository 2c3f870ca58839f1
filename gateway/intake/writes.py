"""Store writes the intakes share: find-by-identifier, conditional upsert, Patient merge-in,
and the one place a newly arrived person is resolved to a Patient.

One person should have one Patient whichever source named them first, so a Patient is found by
any of its keys (the source's own number first, then a valid NHS number) and what a source sends
is laid over what is already known: fields it sends replace, identifiers and links accumulate,
and nothing another source said is dropped. When no key finds anyone (an ambulance record with
no NHS number, a council's first return), the demographic matcher decides: certain → the same
Patient; probable → a new Patient linked `seealso` to the candidate plus a review Task, in the
same transaction; otherwise a new Patient.
Before a Patient is made, `claim_new_person` (gateway/intake/new_person.py) makes sure no other
process is making the same person at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.linking import LinkAction, decide_link, review_task
from gateway.identity.matcher import MatchResult
from gateway.identity.patient_index import PatientIndex
from gateway.identity.person import PersonRecord
from gateway.intake.new_person import claim_new_person
from gateway.mappings.source import SourceSystem
from gateway.store.api import StoredResource, UnitOfWork, new_id
from gateway.types import JSON

# Other processes' new Patients reach this process's matcher within this many seconds.
SYNC_MAX_AGE = 1.0


class AmbiguousMatch(ValueError):
    """More than one live resource holds an identifier that should be unique."""


def clone(data: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, strings, numbers), through orjson: about six times
    quicker than `copy.deepcopy`, which mattered on the bulk intakes' person resolution."""
    return orjson.loads(orjson.dumps(data))


def token(identifier: JSON) -> str:
    return f"{identifier['system']}|{identifier['value']}"


def replaced(res: JSON) -> bool:
    return any(link.get("type") == "replaced-by" for link in res.get("link") or [])


def find_one(uow: UnitOfWork, rtype: str, identifier: JSON, *, exclude: str | None = None) -> StoredResource | None:
    """The one live resource holding `identifier`; a record merged away loses to its survivor."""
    ids = uow.ids_by_token(rtype, "identifier", identifier.get("system"), str(identifier.get("value")))
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
    merged: dict[str, Any] = {**clone(old), **clone(new)}
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
    else:  # no key found anyone: a new person
        claim_new_person(uow, keys)
    if current is None:
        return uow.create(clone(patient))
    return uow.update(overlay_patient(current.json(), patient))[0]


def upsert_by_identifier(uow: UnitOfWork, res: JSON) -> StoredResource:
    """Conditional update on the resource's first identifier (create when none matches)."""
    new: dict[str, Any] = clone(res)
    identifiers = new.get("identifier") or []
    if isinstance(identifiers, dict):  # QuestionnaireResponse.identifier is a single Identifier
        identifiers = [identifiers]
    current = find_one(uow, new["resourceType"], identifiers[0]) if identifiers else None
    if current is None:
        return uow.create(new)
    new["id"] = current.id
    return uow.update(new)[0]


def resolve_patient_refs(uow: UnitOfWork, res: JSON, known: dict[str, str]) -> JSON:
    """Logical Patient references ({"type": "Patient", "identifier": …}) gain `Patient/<id>` when found.

    `known` caches identifier token → Patient id across the resources of one record.
    """
    out: JSON = clone(res)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ident = node.get("identifier")
            if node.get("type") == "Patient" and isinstance(ident, dict) and "reference" not in node:
                key = token(ident)
                if key not in known:
                    found = find_one(uow, "Patient", ident)
                    if found is not None:
                        known[key] = found.id
                if key in known:
                    node["reference"] = f"Patient/{known[key]}"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out


# -- one person, one record ---------------------------------------------------------------------


@dataclass(frozen=True)
class PersonLink:
    """How an incoming person record was resolved.

    `how`: "identifier" (a key found the Patient), "certain" (demographics, linked automatically),
    "probable" (new Patient linked `seealso` + review `task`), "new" (no one matched).
    `written` lists every version written (Patient, and the Task when there is one).
    """

    patient: StoredResource
    how: str
    written: tuple[StoredResource, ...]
    task: StoredResource | None = None
    candidate_id: str | None = None


def _link_into(old: JSON, new: JSON) -> JSON:
    """A demographic link adds what `new` knows to `old` without overwriting what `old` says:
    identifiers, links and source tags accumulate; a field only `new` has is filled in. (A typo
    from an ambulance crew must not replace the name the hospital registered.)"""
    merged: dict[str, Any] = clone(old)
    for field, value in new.items():
        if field not in merged and field not in ("id", "meta", "identifier", "link"):
            merged[field] = clone(value)
    merged["identifier"] = merge_identifiers(old.get("identifier") or [], new.get("identifier") or [])
    links = merge_links(old.get("link") or [], new.get("link") or [])
    if links:
        merged["link"] = links
    tags = _merge_tags(old, new)
    if tags:
        merged["meta"] = {"tag": tags}
    return merged


def _conflicting_key(candidate: JSON, key: JSON) -> bool:
    """The candidate holds another number in the same system: the source itself says two people."""
    return any(
        i.get("system") == key.get("system") and i.get("value") != key.get("value")
        for i in candidate.get("identifier") or []
    )


def live_patient(res: JSON) -> bool:
    """Whether a Patient is filed for matching (active, not replaced by a merge)."""
    return res.get("active", True) is not False and not replaced(res)


def person_record(patient: JSON) -> PersonRecord | None:
    """A Patient's match record (None for an inactive one)."""
    return PersonRecord.from_patient(patient) if patient.get("active", True) is not False else None


# Every field `PersonRecord.from_patient` reads, but the id.
_MATCHED_FIELDS = ("identifier", "name", "birthDate", "gender", "address")


def stored_person_record(patient: JSON, sent: tuple[JSON, PersonRecord] | None) -> PersonRecord | None:
    """`person_record` of a stored Patient; `sent` is the Patient as sent and the record already
    built from it (to match it), reused when the stored Patient reads the same in every field
    `from_patient` reads (a store hook may have changed one): a new person's record was built
    twice, a tenth of the intake's resolution CPU."""
    if sent is None or patient.get("active", True) is False:
        return person_record(patient)
    source, record = sent
    if any(patient.get(f) != source.get(f) for f in _MATCHED_FIELDS):
        return person_record(patient)
    return record.with_resource_id(patient.get("id"))


class PersonResolver:
    """Resolves the person records of one transaction to Patients (make one per transaction).

    The shared `PatientIndex` is synced once, on first need, so it holds everything committed
    before this transaction; Patients written inside the transaction (an earlier row of the same
    chunk) are matched from a small index of their own, since no other connection can see them yet.
    """

    def __init__(self, index: PatientIndex, *, now: datetime) -> None:
        self.index = index
        self.now = now
        self._synced = False
        self._local = InMemoryCandidateIndex()
        self._touched: set[str] = set()  # Patients written here: the shared index has them stale

    def _candidates(self, query: PersonRecord) -> list[MatchResult]:
        if not self._synced:
            self.index.sync(max_age=SYNC_MAX_AGE)
            self._synced = True
        matcher = self.index.matcher
        local = matcher.match(query, self._local, limit=10)
        shared = matcher.match(query, self.index.index, limit=10, exclude=self._touched)
        return sorted(local + shared, key=lambda r: (-r.grade.rank, -r.score, r.record_id))[:10]

    def _remember(self, stored: StoredResource, sent: tuple[JSON, PersonRecord] | None = None) -> None:
        """File a Patient written here (`sent`: as in `stored_person_record`)."""
        patient = stored.json()
        self._touched.add(stored.id)
        self._local.remove(stored.id)
        record = stored_person_record(patient, sent)
        if record is not None and live_patient(patient):
            self._local.add(stored.id, record)
        self.index.prepared(stored, record)  # built once: the commit files it in the shared index

    def resolve(self, uow: UnitOfWork, patient: JSON, keys: list[JSON], *, match: bool = True) -> PersonLink:
        """Find the Patient by the first key that matches (and merge `patient` in), else by
        demographics (when `match`), else create it. Raises `AmbiguousMatch` like `find_one`."""
        for key in keys:
            current = find_one(uow, "Patient", key)
            if current is not None:
                stored = uow.update(overlay_patient(current.json(), patient))[0]
                self._remember(stored)
                return PersonLink(stored, "identifier", (stored,))
        claim_new_person(uow, keys)  # the demographic path may make a Patient too
        sent: tuple[JSON, PersonRecord] | None = None
        if match:
            sent = (patient, PersonRecord.from_patient(patient))
            linked = self._by_demographics(uow, patient, keys, sent[1])
            if linked is not None:
                return linked
        stored = uow.create(clone(patient))
        self._remember(stored, sent)
        return PersonLink(stored, "new", (stored,))

    def _by_demographics(
        self, uow: UnitOfWork, patient: JSON, keys: list[JSON], query: PersonRecord
    ) -> PersonLink | None:
        results = self._candidates(query)
        if not results:
            return None
        rid = new_id()
        decision = decide_link(f"Patient/{rid}", results, now=self.now)
        if decision.action is LinkAction.NEW_PERSON or decision.person_id is None or decision.match is None:
            return None
        current = uow.get("Patient", decision.person_id)
        if current is None or current.deleted or not live_patient(current.json()):
            return None  # the index ran ahead of a merge or delete: safer to make a new record
        candidate = current.json()
        task = decision.review_task
        if decision.action is LinkAction.LINK and keys and _conflicting_key(candidate, keys[0]):
            task = review_task(
                f"Patient/{rid}",
                decision.match,
                [],
                reason="certain demographic match, but the source holds the candidate under another number",
                now=self.now,
            )
        if task is None:
            stored = uow.update(_link_into(candidate, patient))[0]
            self._remember(stored)
            return PersonLink(stored, "certain", (stored,), candidate_id=current.id)
        new = clone(patient)
        new["link"] = merge_links(
            new.get("link") or [], [{"other": {"reference": f"Patient/{current.id}"}, "type": "seealso"}]
        )
        stored = uow.create(new, rid=rid)
        self._remember(stored)
        written_task = uow.create(task)
        return PersonLink(stored, "probable", (stored, written_task), written_task, current.id)


def source_provenance(
    source: SourceSystem,
    targets: list[StoredResource],
    *,
    recorded: str,
    entity_kind: str,
    entity_value: str,
    display: str,
) -> JSON:
    """The Provenance of what one source record (a row, a contact, a Bundle) wrote: the sending
    system as author on behalf of its organisation, the exact versions, and the input it came from."""
    agent: JSON = {
        "type": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}
            ]
        },
        "who": {"reference": source.device_reference, "type": "Device", "display": source.name},
    }
    if source.organization:
        agent["onBehalfOf"] = {"reference": source.organization}
    return {
        "resourceType": "Provenance",
        "target": [{"reference": f"{t.reference}/_history/{t.version_id}"} for t in targets],
        "recorded": recorded,
        "agent": [agent],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": source.identifier_system(entity_kind), "value": entity_value},
                    "display": display,
                },
            }
        ],
    }
