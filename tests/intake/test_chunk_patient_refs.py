"""`patient_refs` finds every logical Patient reference a mapped resource holds, wherever it sits,
while skipping the elements whose data types cannot hold a Reference."""

from __future__ import annotations

from gateway.intake.chunks import patient_refs

IDENT = {"system": "https://example.org/person-id", "value": "SC0001"}


def test_references_are_found_at_any_depth_and_linked_ones_are_left_out() -> None:
    subject = {"type": "Patient", "identifier": IDENT}
    in_extension = {"type": "Patient", "identifier": {**IDENT, "value": "SC0002"}}
    member = {"type": "Patient", "identifier": {**IDENT, "value": "SC0003"}}
    res = {
        "resourceType": "CareTeam",
        "meta": {"tag": [{"system": "s", "code": "c"}]},
        "identifier": [IDENT],
        "subject": subject,
        "extension": [
            {"url": "u1", "valueCoding": {"system": "s", "code": "c"}},
            {"url": "u2", "valueReference": in_extension},
        ],
        "participant": [{"role": [{"coding": [{"code": "r"}]}], "member": member, "period": {"start": "2024"}}],
        "managingOrganization": [{"type": "Patient", "identifier": IDENT, "reference": "Patient/already-linked"}],
    }
    assert [id(n) for n in patient_refs(res, [])] == [id(subject), id(in_extension), id(member)]
