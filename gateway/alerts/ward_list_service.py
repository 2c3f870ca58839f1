"""The current ward list read from the store: active case-management episodes and their people.

The store is read directly (not the registry index) so the list is right in any process, also the
CLI and a fresh nightly worker that has no warm index. Consent stays the caller's: it passes
`visible(patient_id)` for the receiving organisation; `patient_visibility` builds one from a
`Repository`, deciding all of a ward's Patients in one guard call (one consent decision batch and
one audit record per list, rather than one per person).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.alerts.registry import CaseManagedEntry, case_managed_entry, ref_id, relative_ref
from gateway.alerts.ward_list import WardListRow, to_csv, to_fhir_list, to_group, ward_rows
from gateway.auth.context import AccessContext
from gateway.fhir.errors import invalid
from gateway.fhir.repository import Guard, Repository
from gateway.fhir.search.parse import parse_search
from gateway.store.api import Cursor, Store, StoredResource, UnitOfWork
from gateway.types import JSON

Visible = Callable[[str], bool]

RECEIVER_CLIENT_ID = "gateway:ward-list"
ALL_WARDS = ("all", "All virtual wards")

_PAGE = 500

Format = Literal["csv", "fhir-list", "fhir-group"]
FORMATS: tuple[str, ...] = ("csv", "fhir-list", "fhir-group")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
FHIR_MEDIA_TYPE = "application/fhir+json"


@dataclass(frozen=True)
class WardListConfig:
    """Ward-list settings, with defaults until `Settings` carries them.

    Each value is taken from `services.extras["ward_list_<name>"]`, else from a `Settings` field
    `ward_list_<name>` (once the lead adds it), else the default here.
    """

    push_time: time = time(20, 0)
    timezone: str = "Europe/London"
    drop_dir: Path | None = None  # None: <data_dir>/ward-lists
    receivers: tuple[str, ...] = ()  # organisations that always get the lists (`Organization/<id>`)
    write_files: bool = True
    store_lists: bool = True
    source: str = "Device/care-gateway"  # List.source: the gateway that compiled the list

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_sources(cls, settings: Any, extras: Mapping[str, Any]) -> WardListConfig:
        def pick(name: str) -> Any:
            key = f"ward_list_{name}"
            if key in extras:
                return extras[key]
            return getattr(settings, key, None)

        values: dict[str, Any] = {}
        if (raw := pick("push_time")) is not None:
            values["push_time"] = raw if isinstance(raw, time) else parse_hhmm(str(raw))
        if (raw := pick("timezone")) is not None:
            ZoneInfo(str(raw))  # fail at start-up, not at 20:00
            values["timezone"] = str(raw)
        if (raw := pick("drop_dir")) is not None:
            values["drop_dir"] = Path(raw)
        if (raw := pick("receivers")) is not None:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            values["receivers"] = tuple(r for r in (str(i).strip() for i in items) if r)
        for flag in ("write_files", "store_lists"):
            if (raw := pick(flag)) is not None:
                values[flag] = bool(raw)
        if (raw := pick("source")) is not None:
            values["source"] = str(raw)
        return cls(**values)

    def drop_folder(self, data_dir: Path) -> Path:
        return self.drop_dir if self.drop_dir is not None else data_dir / "ward-lists"


def parse_hhmm(text: str) -> time:
    """`HH:MM` (24-hour) as a time; ValueError otherwise."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"expected HH:MM, got {text!r}")
    return time(int(hours), int(minutes))


def _active_episodes(uow: UnitOfWork) -> Iterator[JSON]:
    """Every `EpisodeOfCare?status=active`, page by page (keyset paging, so no row is skipped)."""
    parsed = parse_search(
        uow.store.registry,
        "EpisodeOfCare",
        [("status", "active"), ("_total", "none")],
        strict=True,
        default_count=_PAGE,
        max_count=_PAGE,
    )
    query = parsed.query
    while True:
        page = uow.search(query)
        for row in page.rows:
            if row.content is not None:
                yield row.json()
        if not page.has_next or page.last_key is None:
            return
        query = replace(query, cursor=Cursor(False, page.last_key))


def ward_entries(
    uow: UnitOfWork, *, ward: str | None, organization: str | None = None, now: datetime | None = None
) -> list[CaseManagedEntry]:
    """Case-managed entries on `ward` (a Location id or `Location/<id>`; None = every ward).

    `organization` narrows to episodes managed by that organisation (`Organization/<id>`), the
    provider running the ward; it is not the receiving organisation (that is `visible`'s job).
    `now` also drops episodes whose `period.end` has passed while still `active`.
    """
    wanted_ward = (ref_id(ward) or ward) if ward else None
    wanted_org = relative_ref(organization) or organization if organization else None
    entries: list[CaseManagedEntry] = []
    for episode in _active_episodes(uow):
        entry = case_managed_entry(episode, now=now)
        if entry is None:
            continue
        if wanted_ward is not None and entry.ward_id != wanted_ward:
            continue
        if wanted_org is not None and entry.managing_organization != wanted_org:
            continue
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.ward_id, e.patient_id, e.episode_id))


def _by_reference(rows: Iterable[StoredResource]) -> dict[str, JSON]:
    return {row.reference: row.json() for row in rows}


def _fetch_refs(uow: UnitOfWork, refs: Iterable[str]) -> dict[str, JSON]:
    pairs = [(t, i) for ref in refs if ref.count("/") == 1 for t, i in [ref.split("/")]]
    return _by_reference(uow.fetch_many(pairs))


def current_ward_list(
    uow: UnitOfWork,
    *,
    ward: str | None,
    organization: str | None = None,
    visible: Visible,
    now: datetime | None = None,
    entries: list[CaseManagedEntry] | None = None,
    hospital_number_systems: Iterable[str] | None = None,
) -> list[WardListRow]:
    """The ward list rows a receiving organisation may see (see `ward_entries` for the filters).

    Pass `entries` when they were already gathered (e.g. to build `visible` for exactly those
    people first); otherwise they are read here. Sorted by name then patient id.
    """
    if entries is None:
        entries = ward_entries(uow, ward=ward, organization=organization, now=now)
    patients = {
        ref_id(ref) or "": res for ref, res in _fetch_refs(uow, sorted({e.patient_ref for e in entries})).items()
    }
    managers = _fetch_refs(uow, sorted({e.care_manager for e in entries}))
    teams = _fetch_refs(uow, sorted({t for e in entries for t in e.teams}))
    systems = set(hospital_number_systems) if hospital_number_systems is not None else None
    return ward_rows(
        entries,
        patients=patients,
        care_managers=managers,
        teams=teams,
        visible=visible,
        hospital_number_systems=systems,
    )


def patient_visibility(
    repo: Repository, uow: UnitOfWork, patient_ids: Iterable[str], *, query: str = "ward-list"
) -> Visible:
    """`visible(patient_id)` as the repository's caller may see these Patients (one guard call).

    A Patient the guard withholds, or one that does not exist, is not visible.
    """
    if repo.is_open:
        return lambda _pid: True
    rows = uow.fetch_many(("Patient", pid) for pid in sorted(set(patient_ids)))
    allowed = frozenset(row.id for row in repo.visible(uow, rows, interaction="search", query=query))
    return allowed.__contains__


def wards_of(entries: Iterable[CaseManagedEntry]) -> Mapping[str, str]:
    """Ward id -> ward name for these entries (the first name seen wins, ids sorted)."""
    names: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: (e.ward_id, e.episode_id)):
        names.setdefault(entry.ward_id, entry.ward_name)
    return names


def receiver_context(organization: str) -> AccessContext:
    """The receiving organisation as the consent engine sees it when the gateway prepares its list.

    Not a system context: the list must hold only what that organisation could read itself.
    """
    return AccessContext(
        client_id=RECEIVER_CLIENT_ID,
        organization=relative_ref(organization) or organization,
        scopes=frozenset({"system/Patient.rs", "system/EpisodeOfCare.rs"}),
    )


def receiver_repository(store: Store, organization: str, guard: Guard | None) -> Repository:
    """A Repository bound to the receiving organisation (for the nightly push and system callers)."""
    return Repository(store, receiver_context(organization), guard)


def render(
    rows: list[WardListRow],
    *,
    fmt: str,
    ward_id: str,
    ward_name: str,
    organisation_ref: str | None,
    source_ref: str,
    now: datetime,
) -> tuple[str | JSON, str]:
    """The document for `fmt` and its media type. Raises FhirError (invalid) for an unknown format."""
    receiver = organisation_ref or "all organisations"
    if fmt == "csv":
        return to_csv(rows), CSV_MEDIA_TYPE
    if fmt == "fhir-list":
        doc = to_fhir_list(
            rows, ward_id=ward_id, ward_name=ward_name, organisation_ref=receiver, source_ref=source_ref, now=now
        )
        return doc, FHIR_MEDIA_TYPE
    if fmt == "fhir-group":
        return to_group(rows, ward_id=ward_id, ward_name=ward_name, organisation_ref=receiver, now=now), FHIR_MEDIA_TYPE
    raise invalid(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", ["format"])


def ward_label(ward: str | None, entries: Iterable[CaseManagedEntry]) -> tuple[str, str]:
    """(ward id, ward name) for a list: the asked ward (named from its entries), or all wards."""
    if not ward:
        return ALL_WARDS
    ward_id = ref_id(ward) or ward
    return ward_id, wards_of(entries).get(ward_id, ward_id)
