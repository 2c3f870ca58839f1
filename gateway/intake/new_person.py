"""Making a new person's Patient safely when several gateway processes write at once.

Two processes receiving the same new person at once would each find nobody and each make a Patient.
So before a Patient is made, the person's identifiers are locked until commit (PostgreSQL advisory
locks, `gateway.store.locks`): the second writer waits for the first to commit, sees its Patient and
is refused as a concurrent write (409; the sender retries and then finds it). SQLite writers already
queue on the database's one write lock. A person sent with no identifier cannot be serialised this way.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from gateway.fhir.errors import conflict
from gateway.store.api import UnitOfWork
from gateway.store.locks import hold_until_commit
from gateway.store.schema import resource, sp_token
from gateway.types import JSON


def claim_new_person(uow: UnitOfWork, keys: list[JSON]) -> None:
    """Before a Patient is made for `keys` (found nowhere in this transaction): lock them until commit,
    then make sure no other writer committed a Patient holding one meanwhile.

    Raises FhirError conflict (409) when one did: the transaction's view may be stale (a chunk's
    preloaded lookups), so the caller's sender retries rather than this guessing.
    """
    tokens = sorted({(str(k["system"]), str(k["value"])) for k in keys if k.get("system") and k.get("value")})
    if not tokens or not hold_until_commit(uow.conn, [f"patient-identifier:{s}|{v}" for s, v in tokens]):
        return
    for system, value in tokens:
        holders = uow.conn.execute(_HOLDERS, {"system": system, "value": value}).scalars().all()
        if any(uow.conn.execute(_LIVE, {"rid": rid}).scalar() is False for rid in holders):
            raise conflict("another writer has just created this person's Patient; retry")


# One index probe per identifier, then the holders by primary key: plans that stay cheap however
# large the tables grow, with or without planner statistics (a join over an OR of identifiers was
# planned as a scan of every Patient once the tables grew: a 100k-row extract slowed 5x).
_t, _r = sp_token.c, resource.c
_HOLDERS = select(_t.res_id).where(
    _t.res_type == "Patient",
    _t.param == "identifier",
    _t.code == bindparam("value"),
    _t.system == bindparam("system"),
)
_LIVE = select(_r.deleted).where(_r.res_type == "Patient", _r.res_id == bindparam("rid"))
