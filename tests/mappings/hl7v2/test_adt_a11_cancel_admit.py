"""A11 (ADT_A09) cancels the admission of adt_a01_v23_zsegments: same visit, entered-in-error."""

from __future__ import annotations

FIXTURE = "adt_a11_cancel_admit.hl7"


def test_cancel_admit_retracts_the_same_visit(mapped, valid):
    admit = mapped("adt_a01_v23_zsegments.hl7")
    cancel = mapped(FIXTURE)
    assert cancel.action == "cancel-admit"
    assert cancel.encounter is not None and admit.encounter is not None
    assert cancel.encounter["identifier"] == admit.encounter["identifier"]
    assert cancel.encounter["status"] == "entered-in-error"
    assert cancel.encounter["location"][0]["status"] == "completed"
    assert cancel.patient_identifier == admit.patient_identifier
    valid(cancel.encounter)
