"""`Store.reader(autocommit=True)`: on PostgreSQL its statements run without BEGIN/COMMIT round trips,
and the pooled connection goes back transactional for the next user."""

from __future__ import annotations

from gateway.store.api import Store
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade


def test_autocommit_reader_sends_no_begin_and_hands_back_a_transactional_connection(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1)  # used one at a time: always the same connection
    upgrade(engine)
    store = Store(engine, fhir_base="http://testserver/fhir")
    try:
        created = store.create({"resourceType": "Patient", "active": True})
        with store.reader(autocommit=True) as uow:
            raw = uow.conn.connection.driver_connection
            assert raw is not None and raw.autocommit
            assert uow.read("Patient", created.id).version_id == 1
            assert raw.info.transaction_status.name == "IDLE"  # the read left no transaction open
        with store.writer() as uow:
            assert uow.conn.connection.driver_connection is raw and not raw.autocommit
            uow.update({"resourceType": "Patient", "id": created.id, "active": False})
        with store.reader() as uow:
            assert uow.read("Patient", created.id).version_id == 2
    finally:
        engine.dispose()
