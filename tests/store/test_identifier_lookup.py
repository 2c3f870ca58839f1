"""`UnitOfWork.ids_by_token` (the intakes' identifier lookup) inside a write transaction: it sees
the transaction's own buffered writes without flushing them, and a resource's old identifiers
stop matching as soon as it is updated or deleted. On SQLite and PostgreSQL."""

from __future__ import annotations

from gateway.fhir.services import Services

SYSTEM = "urn:test:mrn"


def patient(value: str, rid: str | None = None) -> dict[str, object]:
    res: dict[str, object] = {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]}
    if rid:
        res["id"] = rid
    return res


def test_lookup_sees_buffered_creates_updates_and_deletes_in_the_same_transaction(services: Services) -> None:
    stored = services.store.create(patient("OLD"))  # committed before the transaction below
    with services.store.writer() as uow:
        new = uow.create(patient("NEW"))  # buffered, not flushed
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "NEW") == [new.id]
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "OLD") == [stored.id]
        uow.update(patient("RENAMED", stored.id))  # its OLD identifier goes at once
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "OLD") == []
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "RENAMED") == [stored.id]
        uow.delete("Patient", new.id)
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "NEW") == []
        assert uow.ids_by_token("Patient", "identifier", "urn:other", "RENAMED") == []
        assert uow.ids_by_token("Encounter", "identifier", SYSTEM, "RENAMED") == []
    with services.store.reader() as uow:
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "RENAMED") == [stored.id]
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "OLD") == []
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "NEW") == []


def test_two_buffered_holders_of_one_identifier_are_both_found(services: Services) -> None:
    with services.store.writer() as uow:
        first, second = uow.create(patient("SAME")), uow.create(patient("SAME"))
        assert sorted(uow.ids_by_token("Patient", "identifier", SYSTEM, "SAME")) == sorted([first.id, second.id])


def test_an_identifier_without_a_system_is_found_before_and_after_commit(services: Services) -> None:
    with services.store.writer() as uow:
        stored = uow.create({"resourceType": "Patient", "identifier": [{"value": "NOSYSTEM"}]})
        assert uow.ids_by_token("Patient", "identifier", None, "NOSYSTEM") == [stored.id]
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "NOSYSTEM") == []
    with services.store.reader() as uow:
        assert uow.ids_by_token("Patient", "identifier", None, "NOSYSTEM") == [stored.id]


def test_preloaded_answers_stay_current_with_the_transactions_own_writes(services: Services) -> None:
    stored = services.store.create(patient("OLD"))
    gone = services.store.create(patient("GONE"))
    with services.store.writer() as uow:
        uow.preload_tokens(
            "identifier",
            [("Patient", SYSTEM, v) for v in ("OLD", "NEW", "RENAMED", "GONE", "LATER")]
            + [("Encounter", SYSTEM, "OLD")],
        )
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "OLD") == [stored.id]
        assert uow.ids_by_token("Encounter", "identifier", SYSTEM, "OLD") == []
        new = uow.create(patient("NEW"))  # buffered
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "NEW") == [new.id]
        uow.flush()  # stored now: the preloaded answer takes it in
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "NEW") == [new.id]
        uow.update(patient("RENAMED", stored.id))
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "OLD") == []
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "RENAMED") == [stored.id]
        uow.flush()
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "RENAMED") == [stored.id]
        uow.delete("Patient", gone.id)
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "GONE") == []
        uow.delete("Patient", new.id)
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "NEW") == []
        later = uow.create(patient("LATER"))
        uow.flush()
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "LATER") == [later.id]


def test_preload_leaves_out_deleted_holders_and_other_systems(services: Services) -> None:
    kept = services.store.create(patient("X1"))
    deleted = services.store.create(patient("X1"))
    services.store.create({"resourceType": "Patient", "identifier": [{"system": "urn:other", "value": "X1"}]})
    with services.store.writer() as uow:
        uow.delete("Patient", deleted.id)
    with services.store.writer() as uow:
        uow.preload_tokens("identifier", [("Patient", SYSTEM, "X1"), ("Patient", None, "X1")])
        assert uow.ids_by_token("Patient", "identifier", SYSTEM, "X1") == [kept.id]
        assert uow.ids_by_token("Patient", "identifier", None, "X1") == []


def test_token_rows_answers_as_the_sqlalchemy_statement_does(services: Services) -> None:
    """`token_rows` (SQLite: straight through the driver) gives the rows of the statement it stands for."""
    from gateway.store.api import _token_rows_stmt, token_rows

    services.store.create(patient("A"))
    services.store.create(patient("B"))
    services.store.create({"resourceType": "Patient", "identifier": [{"value": "A"}]})  # no system
    services.store.create(
        {"resourceType": "Encounter", "status": "planned", "identifier": [{"system": SYSTEM, "value": "A"}]}
    )
    with services.store.writer() as uow:
        for codes in (["A"], ["A", "B"], ["B", "C", "A"], ["Z"], []):
            params = {"rtype": "Patient", "param": "identifier", "codes": codes}
            expected = sorted(tuple(row) for row in uow.conn.execute(_token_rows_stmt(), params))
            assert sorted(tuple(row) for row in token_rows(uow.conn, "Patient", "identifier", codes)) == expected
        got = {(system, code) for _, system, code in token_rows(uow.conn, "Patient", "identifier", ["A", "B"])}
        assert got == {(None, "A"), (SYSTEM, "A"), (SYSTEM, "B")}
