"""Server-assigned ids are version-7 UUIDs: valid FHIR ids that sort in creation order."""

from __future__ import annotations

import os
import re
import uuid

from gateway.store.api import new_id

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def test_new_ids_are_canonical_version_7_uuids() -> None:
    rid = new_id()
    parsed = uuid.UUID(rid)
    assert str(parsed) == rid
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert FHIR_ID.match(rid)


def test_ids_of_one_process_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    # Sub-millisecond time gives order to about a quarter of a microsecond; ids made within the
    # same tick may come out either way round, so compare the time parts only.
    stamps = [uuid.UUID(i).int >> 64 for i in ids]
    assert stamps == sorted(stamps)


def test_a_forked_child_draws_its_own_random_bits() -> None:
    new_id()  # the parent has read random bits ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    parent = new_id()
    assert child[19:] != parent[19:]  # the random tails differ
