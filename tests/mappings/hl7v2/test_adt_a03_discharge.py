"""A03 discharge at 01:30 on 25 Oct 2026, a local time that happens twice (BST, then GMT)."""

from __future__ import annotations

FIXTURE = "adt_a03_discharge.hl7"


def test_discharge_finishes_the_encounter(mapped, valid):
    encounter = mapped(FIXTURE).encounter
    assert encounter is not None
    assert encounter["status"] == "finished"
    assert encounter["location"][0]["status"] == "completed"
    assert encounter["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "01"
    valid(encounter)


def test_ambiguous_autumn_time_reads_as_first_occurrence_and_warns(mapped):
    result = mapped(FIXTURE)
    assert result.encounter is not None
    assert result.encounter["period"] == {"start": "2026-10-20T16:10:00+01:00", "end": "2026-10-25T01:30:00+01:00"}
    assert any(w.startswith("PV1-45: local time 2026-10-25 01:30 occurs twice") for w in result.warnings)
    # MSH-7 (01:45) is ambiguous too; Provenance.recorded is still a valid instant.
    assert result.provenance["recorded"] == "2026-10-25T01:45:12+01:00"
