"""Load the demo data set (fixtures/demo/*.json) once per database."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from gateway.fhir.loader import load_file
from gateway.fhir.services import Services
from gateway.paths import FIXTURES_DIR
from gateway.store.schema import gateway_meta

DEMO_DIR = FIXTURES_DIR / "demo"
_MARKER = "demo_loaded"


def ensure_demo_loaded(services: Services, announce: Callable[[str], None] = lambda _: None) -> int:
    """Load the demo files unless this database already has them; returns entries written."""
    store = services.store
    with store.reader() as uow:
        if uow.conn.execute(select(gateway_meta.c.value).where(gateway_meta.c.key == _MARKER)).first():
            announce("demo data already loaded")
            return 0
    written = 0
    for path in sorted(DEMO_DIR.glob("*.json")):
        written += load_file(store, path)
    with store.writer() as uow:
        uow.conn.execute(gateway_meta.insert().values(key=_MARKER, value=str(written)))
    announce(f"demo data loaded: {written} resources from {DEMO_DIR}")
    return written
