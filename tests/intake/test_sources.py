"""Which registered source sent an HL7 v2 message."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.intake.sources import DEFAULT_SOURCES_FILE, SourceRegistry


def test_default_file_has_a_trust_a_council_and_a_community_provider() -> None:
    registry = SourceRegistry.load(base_url="https://gw.example.org")
    assert DEFAULT_SOURCES_FILE.exists()
    assert {s.kind for s in registry.all()} == {"hospital", "social-care", "community"}
    trust = registry.for_sender("EPIC^1.2.826.0.1^ISO", "Z9X")
    assert trust.source_id == "northtown-trust"
    assert trust.identifier_system("patient-id") == "https://gw.example.org/source/northtown-trust/patient-id"


def test_the_most_specific_pattern_wins_and_unknown_senders_get_their_own_source(tmp_path: Path) -> None:
    path = tmp_path / "sources.json"
    entries = [
        {"source_id": "any-z9x", "name": "A", "kind": "hospital", "senders": [{"facility": "Z9X"}]},
        {"source_id": "lab", "name": "B", "kind": "hospital", "senders": [{"application": "LAB", "facility": "Z9X"}]},
    ]
    path.write_text(json.dumps({"sources": entries}))
    registry = SourceRegistry.load(path, base_url="https://gw")
    assert registry.for_sender("lab", "z9x").source_id == "lab"
    assert registry.for_sender("PAS", "Z9X").source_id == "any-z9x"
    stranger = registry.for_sender("OTHER APP", "QQ1")
    assert stranger.source_id == "hl7-other-app-qq1"
    assert stranger.base_url == "https://gw"
    assert registry.get(stranger.source_id) is None
