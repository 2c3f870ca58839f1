"""Load the demo data set (fixtures/demo) once per database.

The data set is a story told in steps, and `care-gateway demo` walks through the same steps:
the organisations, agreements and people (FHIR JSON); then the three organisations' own files
fed through the real intake (so every fact carries Provenance from its source); then the virtual
ward (episodes, care teams, care plans, the shared assessment), enrolled after the history so
that old admissions do not raise alerts.

Dates: the fixtures are written as of `gateway.demo.dates.REFERENCE_DAY`, and every loader moves
them by the whole days between that day and `today` (the day of loading unless given), so the
story is the same whenever it is told (fixtures/demo/README.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
from sqlalchemy import select

from gateway.demo.community import CommunityReport, ingest_community
from gateway.demo.dates import days_since_reference, shift_csv, shift_hl7, shift_json
from gateway.events import claim
from gateway.fhir.loader import load_json
from gateway.fhir.services import Services
from gateway.intake.web import hl7_intake_of, social_care_intake_of, sources_of
from gateway.paths import FIXTURES_DIR
from gateway.store.schema import gateway_meta
from gateway.types import JSON

DEMO_DIR = FIXTURES_DIR / "demo"
SOURCES_DIR = DEMO_DIR / "sources"
CORE_FILES = ("01-core.json", "02-agreements.json", "03-consents.json")
WARD_FILES = ("04-virtual-ward.json",)
COUNCIL_EXTRACT = SOURCES_DIR / "council_extract.csv"
HOSPITAL_FEED = SOURCES_DIR / "hospital_adt.hl7"
COMMUNITY_RECORDS = SOURCES_DIR / "community_contacts.json"
_MARKER = "demo_loaded"


def _days(today: date | None) -> int:
    return days_since_reference(today or datetime.now(UTC).date())


def _load_fixture(services: Services, name: str, today: date | None) -> int:
    return load_json(services.store, shift_json(orjson.loads((DEMO_DIR / name).read_bytes()), _days(today)))


def load_core(services: Services, today: date | None = None) -> int:
    """Organisations, practitioners, people, information-sharing agreements and Consents."""
    return sum(_load_fixture(services, name, today) for name in CORE_FILES)


def ingest_council_extract(services: Services, today: date | None = None) -> JSON:
    """The council's client-level extract through the social-care intake; returns its per-row report."""
    data = shift_csv(COUNCIL_EXTRACT.read_bytes(), _days(today))
    return social_care_intake_of(services).ingest(data, filename=COUNCIL_EXTRACT.name)


def hospital_messages(path: Path = HOSPITAL_FEED, today: date | None = None) -> list[bytes]:
    """The HL7 v2 messages of a feed file (one message per line, segments separated by CR)."""
    days = _days(today)
    return [shift_hl7(line.rstrip(b"\n"), days) for line in path.read_bytes().split(b"\n") if line.strip()]


def ingest_hospital_feed(services: Services, today: date | None = None) -> list[bytes]:
    """The hospital's ADT history through the HL7 intake (as MLLP would deliver it); returns the ACKs."""
    intake = hl7_intake_of(services)
    return [intake.handle(message) for message in hospital_messages(today=today)]


def ingest_community_records(services: Services, today: date | None = None) -> CommunityReport:
    source = next(s for s in sources_of(services).all() if s.kind == "community")
    data = orjson.dumps(shift_json(orjson.loads(COMMUNITY_RECORDS.read_bytes()), _days(today)))
    return ingest_community(services.store, data, source=source)


def settle_history(services: Services) -> int:
    """Mark the events of the loaded history as dispatched, so enrolling people afterwards does not
    alert anyone about last summer's admissions (the alert rules do not compare an encounter's date
    with the episode's start). Only for loading with no relay running; returns events settled.
    """
    settled = 0
    while True:
        batch = claim(services.store, 1000)
        if not batch.events:
            batch.release()
            return settled
        batch.mark([event.seq for event in batch.events])
        settled += len(batch.events)


def enrol_virtual_ward(services: Services, today: date | None = None) -> int:
    """Episodes of care, care teams, goals, joint care plans and the shared assessment."""
    return sum(_load_fixture(services, name, today) for name in WARD_FILES)


def is_loaded(services: Services) -> bool:
    with services.store.reader() as uow:
        row = uow.conn.execute(select(gateway_meta.c.value).where(gateway_meta.c.key == _MARKER)).first()
    return row is not None


def mark_loaded(services: Services, written: int) -> None:
    with services.store.writer() as uow:
        if uow.conn.execute(select(gateway_meta.c.value).where(gateway_meta.c.key == _MARKER)).first() is None:
            uow.conn.execute(gateway_meta.insert().values(key=_MARKER, value=str(written)))


def ensure_demo_loaded(
    services: Services, announce: Callable[[str], None] = lambda _: None, *, today: date | None = None
) -> int:
    """Load the demo data set unless this database already has it; returns resources written.

    Its dates are placed relative to `today` (default: the day of loading).
    """
    if is_loaded(services):
        announce("demo data already loaded")
        return 0
    today = today or datetime.now(UTC).date()
    written = load_core(services, today)
    report = ingest_council_extract(services, today)
    acks = ingest_hospital_feed(services, today)
    community = ingest_community_records(services, today)
    settle_history(services)
    written += enrol_virtual_ward(services, today)
    mark_loaded(services, written)
    totals = ", ".join(f"{k} {v}" for k, v in report["totals"].items())
    announce(
        f"demo data loaded: {written} resources from {DEMO_DIR}; council extract ({totals}); "
        f"{len(acks)} hospital messages; {community.accepted} community records"
    )
    return written
