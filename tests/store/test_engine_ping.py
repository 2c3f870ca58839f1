"""PostgreSQL connections are pinged at checkout only after sitting idle (`ping_when_idle`).

A busy gateway reuses a connection within milliseconds, so pinging each checkout cost a round
trip per use; a connection idle for long may have been cut, and that one must be replaced before
a request uses it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from gateway.store.engine import ping_when_idle
from tests.conftest import PG_ADMIN_URL


def pooled(url: str, idle_seconds: float) -> Engine:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds)
    return engine


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pid: int) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_an_idle_connection_that_was_cut_is_replaced_before_use() -> None:
    engine = pooled(PG_ADMIN_URL, idle_seconds=0.0)
    try:
        first = backend_pid(engine)
        terminate(first)
        assert backend_pid(engine) != first  # pinged, found dead, reconnected: the caller saw nothing
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_connection_back_in_the_pool_a_moment_ago_is_not_pinged() -> None:
    engine = pooled(PG_ADMIN_URL, idle_seconds=3600.0)
    try:
        terminate(backend_pid(engine))
        with pytest.raises(OperationalError), engine.connect() as conn:  # no ping: the use finds it cut
            conn.execute(text("SELECT 1"))
        assert backend_pid(engine) > 0  # the pool threw the dead one away
    finally:
        engine.dispose()
