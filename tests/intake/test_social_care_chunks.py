"""Social-care extracts written a chunk at a time (identifiers looked up once per chunk, rows staged
and written in bulk): one Patient per person whether a person's rows share a chunk or not, the
review band, updates, idempotent re-sends and a row that cannot be written, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import false, func, select

from gateway.fhir.errors import FhirError, conflict
from gateway.fhir.services import Services
from gateway.identity.linking import REVIEW_PROBABLE_MATCH
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM
from gateway.intake import social_care_intake
from gateway.intake.receipts import list_quarantine
from gateway.intake.social_care_intake import SocialCareIntake
from gateway.intake.sources import SourceRegistry
from gateway.mappings.source import SourceSystem
from gateway.store.schema import outbox, resource

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "social_care"
NOW = datetime(2024, 7, 10, 9, 0, tzinfo=UTC)
Q1 = (FIXTURES / "cld_2024_q1.csv").read_bytes()
Q2 = (FIXTURES / "cld_2024_q2.csv").read_bytes()


@pytest.fixture
def intake(services: Services) -> SocialCareIntake:
    return SocialCareIntake(services.store, SourceRegistry.load(base_url=services.settings.base_url), now=lambda: NOW)


@pytest.fixture(params=[500, 4, 1], ids=["one-chunk", "chunks-of-4", "row-by-row"])
def chunk_rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(social_care_intake, "CHUNK_ROWS", request.param)
    return int(request.param)


def live(services: Services, rtype: str) -> list[dict[str, Any]]:
    r = resource.c
    with services.store.reader() as uow:
        rows = uow.conn.execute(select(r.content).where(r.res_type == rtype, r.deleted == false()).order_by(r.res_id))
        return [orjson.loads(row.content) for row in rows]


def versions_written(services: Services) -> int:
    with services.store.reader() as uow:
        return int(uow.conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def values(res: dict[str, Any], system: str) -> set[str]:
    identifiers = res.get("identifier") or []
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    return {i["value"] for i in identifiers if i["system"] == system}


def resend(data: bytes) -> bytes:
    """The same rows in other bytes (LF line ends), so the file-level receipt does not answer it."""
    return data.replace(b"\r\n", b"\n") if b"\r\n" in data else data.replace(b"\n", b"\r\n")


def extract(rows: list[dict[str, str]]) -> bytes:
    """A CSV extract of the Q1 fixture's columns; unnamed cells blank."""
    header = next(csv.reader(io.StringIO(Q1.decode("utf-8-sig"))))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def row(person: str, event: str = "Request", start: str = "2024-05-01", **cells: str) -> dict[str, str]:
    base = {
        "LA_Code": "E99999999",
        "LA_Person_Unique_Identifier": person,
        "Gender": "Female",
        "Date_of_Birth": "1950-02-03",
        "Postcode": "ZZ99 3CZ",
        "Client_Type": "Service User",
        "Primary_Support_Reason": "Support with Memory & Cognition",
        "Event_Type": event,
        "Event_Start_Date": start,
    }
    return {**base, **cells}


def person_system(intake: SocialCareIntake) -> str:
    return intake.default_source().identifier_system("person-id")


def check_one_patient_per_person(services: Services, source: SourceSystem, people: set[str]) -> None:
    """Every person has exactly one Patient and every event resource of theirs refers to it."""
    system = source.identifier_system("person-id")
    patients = live(services, "Patient")
    owner = {value: p["id"] for p in patients for value in values(p, system)}
    assert set(owner) == people
    assert len(patients) == len(people) == len(set(owner.values()))
    for rtype, field in (("CarePlan", "subject"), ("EpisodeOfCare", "patient"), ("ServiceRequest", "subject")):
        for res in live(services, rtype):
            ref = res[field]
            assert ref["reference"] == f"Patient/{owner[ref['identifier']['value']]}"


def test_rows_of_one_person_within_and_across_chunks_make_one_patient(
    services: Services, intake: SocialCareIntake, chunk_rows: int
) -> None:
    report = intake.ingest(Q1, filename="q1.csv")
    assert report["totals"] == {"rows": 30, "accepted": 30, "rejected": 0, "resources": 90}
    assert [r["row"] for r in report["rows"]] == list(range(1, 31))
    people = {f"SC000{i}" for i in range(1, 9)} | {"SC0101", "SC0102"}
    check_one_patient_per_person(services, intake.default_source(), people)
    # Each person's rows agree on who they are, so no Patient needed a second version.
    with services.store.reader() as uow:
        r = resource.c
        assert {v for (v,) in uow.conn.execute(select(r.version_id).where(r.res_type == "Patient"))} == {1}
    # The carer's RelatedPerson points at the Patient of the person cared for.
    [carer_link] = [rp for rp in live(services, "RelatedPerson") if "SC0101" in values(rp, person_system(intake))]
    [cared_for] = [p for p in live(services, "Patient") if "SC0001" in values(p, person_system(intake))]
    assert carer_link["patient"]["reference"] == f"Patient/{cared_for['id']}"
    # Every Q1 row is an event of its own, so each wrote something and has its Provenance.
    provenance = live(services, "Provenance")
    assert len(provenance) == 30
    assert all(p["target"] for p in provenance)


def test_chunking_does_not_change_what_is_stored(services: Services, intake: SocialCareIntake, chunk_rows: int) -> None:
    intake.ingest(Q1, filename="q1.csv")
    written = Counter(r.res_type for r in _outbox(services))
    assert written == {
        "Patient": 10,
        "CareTeam": 4,
        "RelatedPerson": 2,
        "ServiceRequest": 8,
        "QuestionnaireResponse": 11,
        "EpisodeOfCare": 11,
        "CarePlan": 11,
        "Provenance": 30,
    }


def _outbox(services: Services) -> list[Any]:
    with services.store.reader() as uow:
        return list(uow.conn.execute(select(outbox.c.res_type, outbox.c.res_id, outbox.c.version_id)))


def test_resending_the_extract_changes_nothing(services: Services, intake: SocialCareIntake, chunk_rows: int) -> None:
    first = intake.ingest(Q1, filename="q1.csv")
    written = versions_written(services)
    again = intake.ingest(resend(Q1), filename="q1-again.csv")
    assert again["totals"] == first["totals"]
    assert versions_written(services) == written


def test_a_later_return_updates_the_same_resources(
    services: Services, intake: SocialCareIntake, chunk_rows: int
) -> None:
    intake.ingest(Q1, filename="q1.csv")
    episodes = {e["identifier"][0]["value"]: e for e in live(services, "EpisodeOfCare")}
    report = intake.ingest(Q2, filename="q2.csv")
    assert report["totals"]["rejected"] == 0
    after = {e["identifier"][0]["value"]: e for e in live(services, "EpisodeOfCare")}
    assert set(episodes) < set(after)  # three new services, no duplicates of the old ones
    closed = [k for k in episodes if after[k]["status"] == "finished" and episodes[k]["status"] == "active"]
    assert closed
    for k in closed:
        assert after[k]["id"] == episodes[k]["id"]
        assert after[k]["meta"]["versionId"] == "2"
        assert "end" in after[k]["period"]
    # The Q2 rows that closed an episode say so in their Provenance, naming the new version.
    targets = {t["reference"] for p in live(services, "Provenance") for t in p["target"]}
    assert all(f"EpisodeOfCare/{after[k]['id']}/_history/2" in targets for k in closed)
    people = {f"SC000{i}" for i in range(1, 9)} | {"SC0101", "SC0102"}
    check_one_patient_per_person(services, intake.default_source(), people)
    # The cumulative return sent again changes nothing.
    written = versions_written(services)
    intake.ingest(resend(Q2), filename="q2-again.csv")
    assert versions_written(services) == written


def _two_patients_holding(services: Services, system: str, value: str) -> None:
    """A register that already holds one identifier twice: a lookup by it is ambiguous."""
    for _ in range(2):
        services.store.create({"resourceType": "Patient", "identifier": [{"system": system, "value": value}]})


def test_a_row_that_cannot_be_written_is_rejected_alone(
    services: Services, intake: SocialCareIntake, chunk_rows: int
) -> None:
    system = person_system(intake)
    _two_patients_holding(services, system, "DUP1")
    data = extract(
        [
            row("GOOD1"),
            # A carer whose cared-for person is ambiguous: the carer's Patient is staged first, then
            # the RelatedPerson's lookup fails; nothing of the row may remain.
            row("CARER1", "Service", Client_Type="Carer", Service_Type="Carer Support: Direct to Carer",
                Delivery_Mechanism="Direct Payment", Cared_For_Person_Unique_Identifier="DUP1",
                Postcode="ZZ99 7QX", Date_of_Birth="1961-06-07"),
            row("GOOD2", Date_of_Birth="1944-04-04"),
            row("DUP1", Date_of_Birth="1939-09-09"),
            row("GOOD1", "Assessment", "2024-05-03", Assessment_Type="Long Term Assessment"),
        ]
    )  # fmt: skip
    report = intake.ingest(data, filename="mixed.csv")
    status = {r["row"]: r["status"] for r in report["rows"]}
    assert status == {1: "accepted", 2: "rejected", 3: "accepted", 4: "rejected", 5: "accepted"}
    assert report["totals"]["accepted"] == 3 and report["totals"]["rejected"] == 2
    for entry in report["rows"]:
        if entry["status"] == "rejected":
            [reason] = entry["reasons"]
            assert reason.startswith("not applied:") and "more than one Patient" in reason
    patients = live(services, "Patient")
    holders = Counter(v for p in patients for v in values(p, system))
    assert holders == {"GOOD1": 1, "GOOD2": 1, "DUP1": 2}  # no trace of CARER1
    assert live(services, "RelatedPerson") == []
    assert len(live(services, "ServiceRequest")) == 2
    assert len(live(services, "QuestionnaireResponse")) == 1
    rows_with_provenance = {
        p["entity"][0]["what"]["identifier"]["value"].split("#")[1] for p in live(services, "Provenance")
    }
    assert rows_with_provenance == {"1", "3", "5"}
    with services.store.reader() as uow:
        quarantined = sorted(orjson.loads(e.raw)["row"] for e in list_quarantine(uow.conn))
    assert quarantined == [2, 4]


def test_a_probable_match_gets_one_review_task_however_the_rows_are_chunked(
    services: Services, intake: SocialCareIntake, chunk_rows: int
) -> None:
    # Known to the hospital: same birth date and sex, a neighbouring postcode (same sector), no council id.
    hospital = services.store.create(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "https://trust.example/mrn", "value": "H1"}],
            "gender": "female",
            "birthDate": "1950-02-03",
            "address": [{"postalCode": "ZZ99 3DE"}],
        }
    )
    data = extract([row("NEW1"), row("OTHER", Date_of_Birth="1971-01-01"), row("NEW1", "Assessment", "2024-05-02")])
    report = intake.ingest(data, filename="new1.csv")
    assert report["totals"]["accepted"] == 3
    patients = {p["id"]: p for p in live(services, "Patient")}
    [new] = [p for p in patients.values() if "NEW1" in values(p, person_system(intake))]
    assert new["id"] != hospital.id
    assert new["link"] == [{"other": {"reference": f"Patient/{hospital.id}"}, "type": "seealso"}]
    [task] = live(services, "Task")
    assert task["code"]["coding"][0]["code"] == REVIEW_PROBABLE_MATCH
    assert task["focus"] == {"reference": f"Patient/{new['id']}"}
    assert task["for"] == {"reference": f"Patient/{hospital.id}"}
    targets = {t["reference"].split("/_history")[0] for p in live(services, "Provenance") for t in p["target"]}
    assert f"Task/{task['id']}" in targets
    assert patients[hospital.id]["identifier"] == [{"system": "https://trust.example/mrn", "value": "H1"}]


def test_an_nhs_number_finds_the_hospital_patient_and_later_rows_follow(
    services: Services, intake: SocialCareIntake, chunk_rows: int
) -> None:
    hospital = services.store.create(
        {
            "resourceType": "Patient",
            "identifier": [
                {"system": "https://trust.example/mrn", "value": "H2"},
                {"system": NHS_NUMBER_SYSTEM, "value": "9990010005"},
            ],
            "name": [{"family": "PARKER", "given": ["Alice"]}],
        }
    )
    data = extract(
        [row("NHS1", NHS_Number="9990010005"), row("NHS1", "Assessment", "2024-05-02", NHS_Number="9990010005")]
    )
    intake.ingest(data, filename="nhs1.csv")
    [patient] = live(services, "Patient")
    assert patient["id"] == hospital.id
    assert values(patient, person_system(intake)) == {"NHS1"}
    assert patient["name"] == [{"family": "PARKER", "given": ["Alice"]}]  # the council's row keeps it
    assert patient["meta"]["versionId"] == "2"  # one new version for the chunk, or one for the first row
    refs = {r["subject"]["reference"] for t in ("ServiceRequest", "QuestionnaireResponse") for r in live(services, t)}
    assert refs == {f"Patient/{hospital.id}"}


def record_staged_on(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each chunk, in turn, was staged on a chunk still being committed."""
    staged_on: list[bool] = []
    real_init = social_care_intake.ChunkWrite.__init__

    def init(self: Any, *args: Any, in_flight: Any = None, **kwargs: Any) -> None:
        staged_on.append(in_flight is not None)
        real_init(self, *args, in_flight=in_flight, **kwargs)

    monkeypatch.setattr(social_care_intake.ChunkWrite, "__init__", init)
    return staged_on


def test_a_person_and_a_later_update_straddling_chunks_in_flight(
    services: Services, intake: SocialCareIntake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL each chunk is staged while the one before is still being committed, on what
    that one wrote: a person whose rows span three chunks stays one Patient, gains an NHS number in
    the second, and a service begun in the second and ended in the third is one EpisodeOfCare with
    two versions, named by the third row's Provenance."""
    monkeypatch.setattr(social_care_intake, "CHUNK_ROWS", 2)
    staged_on = record_staged_on(monkeypatch)
    service = {"Service_Type": "Long Term Support: Community", "Service_Component": "Home Support"}
    data = extract(
        [
            row("P1"),
            row("P2", Date_of_Birth="1961-01-01"),
            row("P1", "Service", "2024-04-22", NHS_Number="9990010005", **service),
            row("P2", "Assessment", "2024-05-02", Date_of_Birth="1961-01-01", Assessment_Type="Long Term Assessment"),
            row("P1", "Service", "2024-04-22", NHS_Number="9990010005", Event_End_Date="2024-06-30", **service),
            row("P3", Date_of_Birth="1972-02-02"),
        ]
    )
    report = intake.ingest(data, filename="straddle.csv")
    assert report["totals"]["accepted"] == 6 and [r["row"] for r in report["rows"]] == list(range(1, 7))
    postgres = services.store.engine.dialect.name == "postgresql"
    assert staged_on == [False, postgres, postgres]  # the later chunks staged on the one in flight
    check_one_patient_per_person(services, intake.default_source(), {"P1", "P2", "P3"})
    [p1] = [p for p in live(services, "Patient") if "P1" in values(p, person_system(intake))]
    assert values(p1, NHS_NUMBER_SYSTEM) == {"9990010005"} and p1["meta"]["versionId"] == "2"
    [episode] = live(services, "EpisodeOfCare")
    assert episode["meta"]["versionId"] == "2" and episode["period"]["end"] == "2024-06-30"
    assert episode["patient"]["reference"] == f"Patient/{p1['id']}"
    by_row = {p["entity"][0]["what"]["identifier"]["value"].split("#")[1]: p for p in live(services, "Provenance")}
    assert f"EpisodeOfCare/{episode['id']}/_history/2" in {t["reference"] for t in by_row["5"]["target"]}
    assert f"Patient/{p1['id']}/_history/2" in {t["reference"] for t in by_row["3"]["target"]}
    assert Counter((r.res_type, r.version_id) for r in _outbox(services)) == {
        ("Patient", 1): 3,
        ("Patient", 2): 1,
        ("ServiceRequest", 1): 3,
        ("QuestionnaireResponse", 1): 1,
        ("EpisodeOfCare", 1): 1,
        ("EpisodeOfCare", 2): 1,
        ("CarePlan", 1): 1,
        ("CarePlan", 2): 1,
        ("Provenance", 1): 6,
    }


def test_a_chunk_that_fails_to_commit_stops_the_extract_and_the_chunk_staged_on_it(
    services: Services, intake: SocialCareIntake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next chunk is staged on what the one being committed wrote: when that commit fails, the
    extract fails with it, the next chunk is rolled back, and nothing is recorded as the answer."""
    monkeypatch.setattr(social_care_intake, "CHUNK_ROWS", 10)
    commits = {"n": 0}
    real = social_care_intake.WriteTransaction

    class FailingSecond(real):
        def commit(self) -> None:
            commits["n"] += 1
            if commits["n"] == 2:
                self.rollback()
                raise conflict("made to fail")
            super().commit()

    monkeypatch.setattr(social_care_intake, "WriteTransaction", FailingSecond)
    progress: list[int] = []
    with pytest.raises(FhirError) as raised:
        intake.ingest(Q1, filename="q1.csv", progress=lambda done, total: progress.append(done))
    assert raised.value.status == 409
    assert progress == [10]  # only the chunk that committed counted as done
    # The first chunk's ten rows committed (each wrote something, with its Provenance); no more.
    assert len(live(services, "Provenance")) == 10
    # Nothing was recorded as the extract's answer: sent again, it is ingested in full.
    monkeypatch.setattr(social_care_intake, "WriteTransaction", real)
    report = intake.ingest(Q1, filename="q1.csv")
    assert report["totals"]["accepted"] == 30
    assert len(live(services, "Provenance")) == 30
    people = {f"SC000{i}" for i in range(1, 9)} | {"SC0101", "SC0102"}
    check_one_patient_per_person(services, intake.default_source(), people)


def test_another_writer_changing_what_the_chunk_in_flight_wrote_does_not_fail_the_extract(
    services: Services, intake: SocialCareIntake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next chunk is staged on what the one in flight wrote. If another writer (a hospital
    message about the same person, say) changes one of those resources between that commit and the
    next chunk's lock, the next chunk is staged again on what is stored then, as a serial ingest
    would have: the extract goes in whole and the other writer's change is kept."""
    monkeypatch.setattr(social_care_intake, "CHUNK_ROWS", 2)
    staged_on = record_staged_on(monkeypatch)
    telecom = {"system": "phone", "value": "01632 960000", "use": "home"}
    fired: list[str] = []

    def other_writer(written: list[Any]) -> None:
        """After the first chunk's commit (told before the next chunk locks anything)."""
        if fired:
            return
        [patient] = [s for s in written if s.type == "Patient" and "P1" in values(s.json(), person_system(intake))]
        fired.append(patient.id)
        with services.store.writer() as uow:
            changed = uow.read("Patient", patient.id).json()
            uow.update({**changed, "telecom": [telecom]})

    services.store.on_commit(other_writer)
    data = extract([row("P1"), row("P2", Date_of_Birth="1961-01-01"), row("P1", NHS_Number="9990010005")])
    report = intake.ingest(data, filename="raced.csv")
    assert report["totals"]["accepted"] == 3 and [r["row"] for r in report["rows"]] == [1, 2, 3]
    postgres = services.store.engine.dialect.name == "postgresql"
    # PostgreSQL: staged on the chunk in flight, found changed, staged again on what was stored.
    assert staged_on == ([False, True, False] if postgres else [False, False])
    [p1] = [p for p in live(services, "Patient") if "P1" in values(p, person_system(intake))]
    assert p1["id"] == fired[0] and p1["meta"]["versionId"] == "3"
    assert values(p1, NHS_NUMBER_SYSTEM) == {"9990010005"} and p1["telecom"] == [telecom]
    check_one_patient_per_person(services, intake.default_source(), {"P1", "P2"})
