"""Making a new person's Patient safely when several gateway processes write at once.

Two processes receiving the same new person at once would each find nobody and each make a Patient.
So before a Patient is made, the person's identifiers are locked until commit (PostgreSQL advisory
locks, `gateway.store.locks`): the second writer waits for the first to commit, sees its Patient and
is refused as a concurrent write (409; the sender retries and then finds it). SQLite writers already
queue on the database's one write lock. A person sent with no identifier cannot be serialised this way.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.fhir.errors import conflict
from gateway.store.api import UnitOfWork, live_ids_stmt, token_rows
from gateway.store.locks import hold_until_commit
from gateway.store.staging import StagingUnitOfWork, Token
from gateway.types import JSON

_NAME = "patient-identifier:{}|{}"


def claim_new_people(staging: StagingUnitOfWork, tokens: Iterable[Token]) -> None:
    """`claim_new_person` ahead, for every Patient identifier a chunk preloaded and found nowhere:
    all locked in one statement (sorted, as every writer takes them), then looked up again, so the
    chunk's rows make their new people with no round trip each (a third of the rows of an extract
    bring a new person; the lock and the check were two to three round trips per person)."""
    unheld = staging.unheld(tokens)
    absent = sorted({(str(system), code) for rtype, system, code in unheld if rtype == "Patient" and system and code})
    if not absent or not hold_until_commit(staging.conn, [_NAME.format(s, v) for s, v in absent]):
        return
    staging.reload([("Patient", s, v) for s, v in absent])
    staging.claimed_identifiers.update(absent)


def claim_new_person(uow: UnitOfWork, keys: list[JSON]) -> None:
    """Before a Patient is made for `keys` (found nowhere in this transaction): lock them until commit,
    then make sure no other writer committed a Patient holding one meanwhile.

    Raises FhirError conflict (409) when one did: the transaction's view may be stale (a chunk's
    preloaded lookups), so the caller's sender retries rather than this guessing.
    """
    tokens = sorted({(str(k["system"]), str(k["value"])) for k in keys if k.get("system") and k.get("value")})
    if uow.claimed_identifiers.issuperset(tokens):
        return  # locked and looked up again already (`claim_new_people`): the view is current
    if not tokens or not hold_until_commit(uow.conn, [_NAME.format(s, v) for s, v in tokens]):
        return
    holders: set[str] = set()
    wanted = set(tokens)
    for rid, system, code in token_rows(uow.conn, "Patient", "identifier", sorted({v for _, v in tokens})):
        if (system, code) in wanted:
            holders.add(rid)
    if holders and uow.conn.execute(live_ids_stmt(), {"rtype": "Patient", "ids": sorted(holders)}).first():
        raise conflict("another writer has just created this person's Patient; retry")
