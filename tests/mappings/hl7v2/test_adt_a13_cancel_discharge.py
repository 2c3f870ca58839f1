"""A13 (ADT_A01) cancels the discharge of adt_a03_discharge: back in progress, no end."""

from __future__ import annotations

FIXTURE = "adt_a13_cancel_discharge.hl7"


def test_cancel_discharge_reopens_the_visit(mapped, valid):
    discharge = mapped("adt_a03_discharge.hl7")
    cancel = mapped(FIXTURE)
    assert cancel.action == "cancel-discharge"
    assert cancel.encounter is not None and discharge.encounter is not None
    assert cancel.encounter["identifier"] == discharge.encounter["identifier"]
    assert cancel.encounter["status"] == "in-progress"
    assert cancel.encounter["period"] == {"start": "2026-10-20T16:10:00+01:00"}
    assert cancel.encounter["location"][0]["status"] == "active"
    valid(cancel.encounter)
