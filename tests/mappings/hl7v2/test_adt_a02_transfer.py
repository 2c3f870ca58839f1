"""A02 transfer: the new ward is the active location, the old one completed."""

from __future__ import annotations

FIXTURE = "adt_a02_transfer.hl7"


def test_transfer_moves_the_active_location(mapped, ids, valid):
    result = mapped(FIXTURE)
    encounter = result.encounter
    assert result.action == "upsert"
    assert encounter is not None
    assert encounter["status"] == "in-progress"
    locations = [(loc["location"]["identifier"]["value"], loc["status"]) for loc in encounter["location"]]
    assert locations == [("Z9X/CCU/1/02", "active"), ("Z9X/WARD7/B2/04", "completed")]
    assert encounter["identifier"][0] == {
        "use": "official",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]},
        "system": ids("encounter-id"),
        "value": "IP2026000451",
    }
    assert result.provenance["occurredDateTime"] == "2026-01-16T14:25:00+00:00"
    valid(encounter)
