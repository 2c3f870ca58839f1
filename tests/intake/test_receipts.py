"""`find_receipts`: a group commit's receipts read in one query, only the (source, key) pairs asked
for (on SQLite straight through the driver), with the ACK bytes exactly as stored."""

from __future__ import annotations

from datetime import datetime

from gateway.fhir.services import Services
from gateway.intake.receipts import add_receipts, find_receipts, receipt_row


def _row(source: str, key: str, ack: bytes, quarantine_id: int | None = None) -> dict[str, object]:
    return receipt_row(
        source_id=source,
        key=key,
        kind="hl7v2",
        control_id="C1",
        received_at=datetime(2026, 12, 7, 9, 0),
        outcome="accepted" if quarantine_id is None else "quarantined",
        ack=ack,
        quarantine_id=quarantine_id,
    )


def test_only_the_pairs_asked_for_are_found(services: Services) -> None:
    with services.store.writer() as uow:
        add_receipts(uow.conn, [_row("s1", "k1", b"ACK1\r"), _row("s2", "k2", b"", 7), _row("s1", "k3", b"\x00\xff")])
    with services.store.writer() as uow:
        # ("s1", "k2") and ("s2", "k1") cross the two lists but were never received
        found = find_receipts(uow.conn, [("s1", "k1"), ("s2", "k2"), ("s1", "k2"), ("s2", "k1"), ("s1", "k1")])
        assert set(found) == {("s1", "k1"), ("s2", "k2")}
        assert (found[("s1", "k1")].ack, found[("s1", "k1")].quarantine_id) == (b"ACK1\r", None)
        assert (found[("s2", "k2")].ack, found[("s2", "k2")].outcome, found[("s2", "k2")].quarantine_id) == (
            b"",
            "quarantined",
            7,
        )
        assert isinstance(found[("s1", "k1")].id, int)
        assert find_receipts(uow.conn, [("s1", "k3")])[("s1", "k3")].ack == b"\x00\xff"
        assert find_receipts(uow.conn, [("s3", "k1")]) == {}
        assert find_receipts(uow.conn, []) == {}
