"""The candidate index over stored Patients, kept in step with the store.

Every process keeps its own in-memory index. Before each use it catches up with Patients
written since its watermark (by any process: the query reads the shared database), with a
few seconds of overlap so a transaction that committed late is never missed; re-adding a
record is idempotent.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.matcher import Matcher
from gateway.identity.person import PersonRecord
from gateway.store.api import Store, StoredResource
from gateway.store.schema import resource

_OVERLAP = timedelta(seconds=5)
_MAX_PREPARED = 10_000
EXTRAS_KEY = "patient_index"  # where a process keeps its one shared index (services.extras)


class PatientIndex:
    def __init__(self, store: Store, matcher: Matcher | None = None) -> None:
        self.store = store
        self.matcher = matcher or Matcher()
        self.index = InMemoryCandidateIndex()
        self._watermark = datetime.min
        self._applied: dict[str, int] = {}  # version applied per id: the overlap re-reads cost no JSON
        self._lock = threading.Lock()
        self._synced_at = 0.0
        # Records a writer already built for versions it is about to commit (see `prepared`).
        self._prepared: dict[tuple[str, int], tuple[bytes, PersonRecord | None]] = {}
        # This process's own commits go into the index at once; other processes' are read by sync().
        store.on_commit(self._note)

    def prepared(self, stored: StoredResource, record: PersonRecord | None) -> None:
        """Offer the record built from `stored` (None: not live, not indexed), so that its commit
        files it without reading the JSON again. Used only if the committed version has exactly
        this content (a rolled-back attempt's offer is never taken for another content)."""
        if stored.content is None:
            return
        with self._lock:
            if len(self._prepared) > _MAX_PREPARED:  # offers of rolled-back transactions
                self._prepared.clear()
            self._prepared[(stored.id, stored.version_id)] = (stored.content, record)

    def _note(self, written: list[StoredResource]) -> None:
        with self._lock:
            for stored in written:
                if stored.type == "Patient":
                    offer = self._prepared.pop((stored.id, stored.version_id), None)
                    if offer is not None and offer[0] == stored.content and not stored.deleted:
                        self._file(stored.id, stored.version_id, offer[1])
                    else:
                        self._apply(stored.id, stored.version_id, stored.deleted, stored.content)

    def _apply(self, rid: str, version: int, deleted: bool, content: str | bytes | None) -> None:
        if self._applied.get(rid) == version:
            return
        record = None
        if not deleted and content is not None:
            patient = orjson.loads(content)
            if patient.get("active", True) is not False:
                record = PersonRecord.from_patient(patient)
        self._file(rid, version, record)

    def _file(self, rid: str, version: int, record: PersonRecord | None) -> None:
        if self._applied.get(rid) == version:
            return
        self.index.remove(rid)
        if record is not None:
            self.index.add(rid, record)
        self._applied[rid] = version

    @classmethod
    def shared(cls, store: Store, extras: dict[str, Any]) -> PatientIndex:
        """The process's one index (kept in `extras`), so $match and the intakes sync it once."""
        index = extras.get(EXTRAS_KEY)
        if index is None:
            index = extras[EXTRAS_KEY] = cls(store)
        assert isinstance(index, PatientIndex)
        return index

    def sync(self, *, max_age: float = 0.0) -> int:
        """Apply Patients changed since the last sync; returns how many rows were read.

        `max_age`: skip the read when the last sync is younger than this many seconds (the
        intake's hot path: this process's own writes are in the index already via on_commit).
        """
        if max_age and time.monotonic() - self._synced_at < max_age:
            return 0
        with self._lock:
            self._synced_at = time.monotonic()
            since = self._watermark - _OVERLAP if self._watermark > datetime.min + _OVERLAP else datetime.min
            r = resource.c
            changed = (r.res_type == "Patient") & (r.last_updated > since)
            with self.store.reader() as uow:
                # The watermark first, then the rows: any row it covers is among them (a row committed
                # in between is read now and again next time, which is harmless). Reading it apart
                # spares a datetime per row: at 500 messages a second the overlap is ~2,500 rows.
                latest = uow.conn.execute(select(func.max(r.last_updated)).where(changed)).scalar()
                rows = uow.conn.execute(select(r.res_id, r.version_id).where(changed)).all()
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
                self._apply(row.res_id, row.version_id, row.deleted, row.content)
            if latest is not None:
                self._watermark = max(self._watermark, latest)
            return len(rows)
