"""The candidate index over stored Patients, kept in step with the store.

Every process keeps its own in-memory index. Before each use it catches up with Patients
written since its watermark (by any process: the query reads the shared database), with a
few seconds of overlap so a transaction that committed late is never missed; re-adding a
record is idempotent.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.matcher import Matcher
from gateway.identity.person import PersonRecord
from gateway.store.api import Store
from gateway.store.schema import resource

_OVERLAP = timedelta(seconds=5)
EXTRAS_KEY = "patient_index"  # where a process keeps its one shared index (services.extras)


class PatientIndex:
    def __init__(self, store: Store, matcher: Matcher | None = None) -> None:
        self.store = store
        self.matcher = matcher or Matcher()
        self.index = InMemoryCandidateIndex()
        self._watermark = datetime.min
        self._applied: dict[str, int] = {}  # version applied per id: the overlap re-reads cost no JSON
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, store: Store, extras: dict[str, Any]) -> PatientIndex:
        """The process's one index (kept in `extras`), so $match and the intakes sync it once."""
        index = extras.get(EXTRAS_KEY)
        if index is None:
            index = extras[EXTRAS_KEY] = cls(store)
        assert isinstance(index, PatientIndex)
        return index

    def sync(self) -> int:
        """Apply Patients changed since the last sync; returns how many rows were read."""
        with self._lock:
            since = self._watermark - _OVERLAP if self._watermark > datetime.min + _OVERLAP else datetime.min
            r = resource.c
            with self.store.reader() as uow:
                rows = uow.conn.execute(
                    select(r.res_id, r.version_id, r.last_updated)
                    .where(r.res_type == "Patient", r.last_updated > since)
                    .order_by(r.last_updated)
                ).all()
                fresh = [row.res_id for row in rows if self._applied.get(row.res_id) != row.version_id]
                content: dict[str, Any] = {}
                for start in range(0, len(fresh), 500):
                    ids = fresh[start : start + 500]
                    content.update(
                        (row.res_id, row)
                        for row in uow.conn.execute(
                            select(r.res_id, r.version_id, r.deleted, r.content).where(
                                r.res_type == "Patient", r.res_id.in_(ids)
                            )
                        )
                    )
            for row in content.values():
                self.index.remove(row.res_id)
                if not row.deleted and row.content is not None:
                    patient = orjson.loads(row.content)
                    if patient.get("active", True) is not False:
                        self.index.add(row.res_id, PersonRecord.from_patient(patient))
                self._applied[row.res_id] = row.version_id
            for row in rows:
                self._watermark = max(self._watermark, row.last_updated)
            return len(rows)
