"""The candidate index over stored Patients, kept in step with the store.

Every process keeps its own in-memory index. Before each use it catches up with Patients
written since its watermark (by any process: the query reads the shared database), with a
few seconds of overlap so a transaction that committed late is never missed; re-adding a
record is idempotent.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.matcher import Matcher
from gateway.identity.person import PersonRecord
from gateway.store.api import Store
from gateway.store.schema import resource

_OVERLAP = timedelta(seconds=5)


class PatientIndex:
    def __init__(self, store: Store, matcher: Matcher | None = None) -> None:
        self.store = store
        self.matcher = matcher or Matcher()
        self.index = InMemoryCandidateIndex()
        self._watermark = datetime.min
        self._lock = threading.Lock()

    def sync(self) -> int:
        """Apply Patients changed since the last sync; returns how many rows were read."""
        with self._lock:
            since = self._watermark - _OVERLAP if self._watermark > datetime.min + _OVERLAP else datetime.min
            r = resource.c
            with self.store.reader() as uow:
                rows = uow.conn.execute(
                    select(r.res_id, r.deleted, r.content, r.last_updated)
                    .where(r.res_type == "Patient", r.last_updated > since)
                    .order_by(r.last_updated)
                ).all()
            for row in rows:
                if row.deleted or row.content is None:
                    self.index.remove(row.res_id)
                else:
                    patient = orjson.loads(row.content)
                    self.index.remove(row.res_id)
                    if patient.get("active", True) is not False:
                        self.index.add(row.res_id, PersonRecord.from_patient(patient))
                self._watermark = max(self._watermark, row.last_updated)
            return len(rows)
