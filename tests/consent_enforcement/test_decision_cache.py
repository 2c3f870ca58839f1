"""The decision cache is never stale: every input change is seen by every process at its commit.

Two `Services` on one database sharing one Redis stand for two gateway processes: `a` reads
(its cache warm, and Redis holding its decisions), `b` writes; then `a` (and a fresh `b` read)
must answer from the new state. Covered: a Consent added, changed and deleted; an agreement
suspended; a Patient's opt-out flag and links; a client registered; a Consent period ending
with no write at all. And the cache's own rules: shared through Redis, break-glass never
cached, a Redis outage only costs speed, content-reading Consents decided per resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.app import build_services
from gateway.auth import ClientRepository
from gateway.auth.context import AccessContext
from gateway.codes import EXT_NATIONAL_OPT_OUT
from gateway.consent import SOURCE_ORGANIZATION_TAG_SYSTEM, build_agreement
from gateway.consent.consents import CONSENT_SCOPE_SYSTEM
from gateway.consent.decision import Decision
from gateway.consent.decision_cache import DecisionCache, DecisionKey
from gateway.consent.facts import Facts
from gateway.fhir.access import ConsentGuard, subscriber_visibility
from gateway.fhir.services import Services
from tests.conftest import REDIS_URL, Database, make_settings

CASE_TEAM = "Organization/case-mgmt"
TRUST = "trust-rxx"
CALLER = AccessContext(
    client_id="case-app", organization=CASE_TEAM, role="case-manager", scopes=frozenset({"system/*.rs"})
)
NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Node:
    """One gateway process: its own store, guard and cache."""

    services: Services
    guard: ConsentGuard

    def sees(self, rtype: str, rid: str, ctx: AccessContext = CALLER) -> bool:
        with self.services.store.reader() as uow:
            return bool(self.guard.visible(ctx, uow, [uow.read(rtype, rid)]))

    def write(self, resource: dict[str, Any]) -> None:
        with self.services.store.writer() as uow:
            uow.update(resource)

    def delete(self, rtype: str, rid: str) -> None:
        with self.services.store.writer() as uow:
            uow.delete(rtype, rid)


def tagged(resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "meta": {"tag": [{"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": TRUST}]}}


def patient(**extra: Any) -> dict[str, Any]:
    return tagged({"resourceType": "Patient", "id": "p1", "gender": "unknown", **extra})


def observation(rid: str, code: str = "8867-4") -> dict[str, Any]:
    return tagged(
        {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2025-06-01",
        }
    )


def consent(provision: dict[str, Any], cid: str = "c1") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "provision": provision,
    }


def agreement(status: str = "active", purposes: tuple[str, ...] = ("TREAT",)) -> dict[str, Any]:
    return build_agreement(id="isa-1", recipients=[CASE_TEAM], purposes=list(purposes), status=status)


@pytest.fixture
def nodes(tmp_path: Path, database: Database) -> Iterator[tuple[Node, Node, Clock]]:
    clock = Clock()
    built = []
    for name in ("a", "b"):
        services = build_services(make_settings(tmp_path / name, database.url))
        guard = ConsentGuard(services.store, clock=clock, decisions=DecisionCache(redis_url=REDIS_URL))
        built.append(Node(services, guard))
    a, b = built
    b.write(patient())
    b.write(observation("o1"))
    b.write(agreement())
    yield a, b, clock
    for node in built:
        node.services.store.engine.dispose()


def test_decisions_are_cached_and_shared_through_redis(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    assert a.sees("Observation", "o1")
    assert a.guard.decisions.stats.misses == 1
    assert a.sees("Observation", "o1")
    assert a.guard.decisions.stats.hits == 1
    assert b.sees("Observation", "o1")  # decided by `a`, found in Redis
    assert (b.guard.decisions.stats.redis_hits, b.guard.decisions.stats.misses) == (1, 0)


def test_consent_added_changed_and_deleted_in_another_process(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    assert a.sees("Observation", "o1") and a.sees("Observation", "o1")
    b.write(consent({"type": "deny"}))
    assert not a.sees("Observation", "o1")
    assert not b.sees("Observation", "o1")
    b.write(consent({"type": "permit"}))
    assert a.sees("Observation", "o1")
    b.write(consent({"type": "deny"}))
    assert not a.sees("Observation", "o1")
    b.delete("Consent", "c1")
    assert a.sees("Observation", "o1")


def test_agreement_suspended_and_restored(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    assert a.sees("Observation", "o1")
    b.write(agreement(status="suspended"))
    assert not a.sees("Observation", "o1")
    b.write(agreement())
    assert a.sees("Observation", "o1")
    b.delete("Basic", "isa-1")
    assert not a.sees("Observation", "o1")


def test_patient_opt_out_is_seen_at_once(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    research = replace(CALLER, purpose_of_use="HRESCH")
    b.write(agreement(purposes=("TREAT", "HRESCH")))
    b.write(consent({"type": "permit"}))  # permits every purpose without naming one: opt-out applies
    assert a.sees("Observation", "o1", research)
    b.write(patient(extension=[{"url": EXT_NATIONAL_OPT_OUT, "valueBoolean": True}]))
    assert not a.sees("Observation", "o1", research)
    assert not a.sees("Patient", "p1", research)
    assert a.sees("Observation", "o1")  # direct care ignores the national opt-out
    b.write(patient(extension=[{"url": EXT_NATIONAL_OPT_OUT, "valueBoolean": False}]))
    assert a.sees("Observation", "o1", research)


def test_patient_links_change_the_key(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    assert a.sees("Observation", "o1")
    misses = a.guard.decisions.stats.misses
    b.write(patient(link=[{"other": {"reference": "Patient/p2"}, "type": "seealso"}]))
    assert a.sees("Observation", "o1")
    assert a.guard.decisions.stats.misses == misses + 1


def test_client_change_changes_the_key(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    assert a.sees("Observation", "o1")
    misses = a.guard.decisions.stats.misses
    repo = ClientRepository(b.services.store.engine)
    repo.add(name="other", organization=CASE_TEAM, role="clinician", scopes="system/*.rs", secret="s" * 32)
    assert a.sees("Observation", "o1")
    assert a.guard.decisions.stats.misses == misses + 1
    repo.disable("other")
    assert a.sees("Observation", "o1")
    assert a.guard.decisions.stats.misses == misses + 2


def test_cached_decision_expires_at_a_consent_period_boundary(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, clock = nodes
    end = NOW + timedelta(hours=1)
    b.write(consent({"type": "deny", "period": {"start": "2025-01-01T00:00:00Z", "end": end.isoformat()}}))
    assert not a.sees("Observation", "o1")
    assert not a.sees("Observation", "o1")  # cached
    clock.now = end + timedelta(seconds=1)  # no write at all: the period simply ended
    assert a.sees("Observation", "o1")
    assert b.sees("Observation", "o1")


def test_consent_reading_content_is_decided_per_resource(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    b.write(observation("o2", code="59408-5"))
    hidden_code = {"code": [{"coding": [{"system": "http://loinc.org", "code": "59408-5"}]}]}
    b.write(consent({"type": "permit", "provision": [{"type": "deny", **hidden_code}]}))
    assert a.sees("Observation", "o1")
    assert not a.sees("Observation", "o2")  # same class as o1, other code
    with a.services.store.reader() as uow:
        rows = uow.fetch_many([("Observation", "o1"), ("Observation", "o2")])
        assert [r.id for r in a.guard.visible(CALLER, uow, rows)] == ["o1"]


def test_break_glass_is_never_cached(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    b.write(build_agreement(id="isa-btg", recipients=[CASE_TEAM], purposes=["ETREAT"], break_glass=True))
    btg = replace(CALLER, purpose_of_use="BTG", break_glass_reason="unconscious, no history")
    assert a.sees("Observation", "o1", btg)
    assert a.sees("Observation", "o1", btg)
    stats = a.guard.decisions.stats
    assert (stats.hits, stats.misses, stats.stored) == (0, 0, 0)


def test_redis_outage_costs_speed_not_answers(nodes: tuple[Node, Node, Clock]) -> None:
    a, b, _ = nodes
    down = ConsentGuard(a.services.store, decisions=DecisionCache(redis_url="redis://127.0.0.1:1/0"))
    node = Node(a.services, down)
    assert node.sees("Observation", "o1")
    b.write(consent({"type": "deny"}))
    assert not node.sees("Observation", "o1")
    assert down.decisions.stats.redis_errors >= 1


def _key(org: str) -> DecisionKey:
    facts = Facts("Observation", ("p1",), frozenset(), frozenset(), frozenset(), frozenset())
    return DecisionKey(
        caller=("c", org, "r", "TREAT"), facts=facts, people=(("p1", 1, ()),), agreements=(), policy=("1", "1")
    )


def test_cache_keeps_no_break_glass_and_honours_valid_until() -> None:
    cache = DecisionCache()
    now = NOW
    keep, past, btg = _key("Organization/a"), _key("Organization/b"), _key("Organization/c")
    cache.put_many(
        {
            keep: Decision(True, ("x",)),
            past: Decision(True, ("x",), valid_until=now + timedelta(minutes=1)),
            btg: Decision(True, ("x",), break_glass=True, expires_at=now + timedelta(minutes=5)),
        },
        now,
    )
    assert set(cache.get_many([keep, past, btg], now)) == {keep, past}
    assert set(cache.get_many([keep, past, btg], now + timedelta(minutes=2))) == {keep}


def test_cache_is_bounded() -> None:
    cache = DecisionCache(max_entries=2)
    keys = [_key(f"Organization/{i}") for i in range(3)]
    cache.put_many({k: Decision(True, ("x",)) for k in keys}, NOW)
    assert len(cache) == 2
    assert keys[0] not in cache.get_many(keys, NOW)


def test_a_consent_written_earlier_in_the_same_transaction_applies(nodes: tuple[Node, Node, Clock]) -> None:
    a, _, _ = nodes
    with a.services.store.writer() as uow:  # a transaction Bundle: PUT Consent, then GET
        assert a.guard.visible(CALLER, uow, [uow.read("Observation", "o1")])
        uow.update(consent({"type": "deny"}))
        assert not a.guard.visible(CALLER, uow, [uow.read("Observation", "o1")])


def test_subscriber_decisions_stay_in_the_deciding_process(nodes: tuple[Node, Node, Clock]) -> None:
    """A notification's decision is made once, by the process numbering the event, mostly for a
    person nobody asked about before (an alert): Redis would be two round trips inside the alert's
    write transaction for an entry nobody reads. The process's own cache still keeps it."""
    a, b, _ = nodes
    sub = {"resourceType": "Subscription", "id": "s1", "status": "active", "criteria": "x", "channel": {}}
    b.write({**sub, "meta": {"tag": [{"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": "case-mgmt"}]}})
    assert subscriber_visibility(a.guard, a.services.store)([("s1", "Observation", "o1")]) == [True]
    assert (a.guard.decisions.stats.misses, a.guard.decisions.stats.stored) == (1, 1)
    assert subscriber_visibility(a.guard, a.services.store)([("s1", "Observation", "o1")]) == [True]
    assert a.guard.decisions.stats.hits == 1
    assert subscriber_visibility(b.guard, b.services.store)([("s1", "Observation", "o1")]) == [True]
    assert (b.guard.decisions.stats.redis_hits, b.guard.decisions.stats.misses) == (0, 1)


def test_a_subscriber_the_caller_knows_is_decided_without_reading_it(nodes: tuple[Node, Node, Clock]) -> None:
    """The numbering process passes each subscriber's source organisation from the spec it parsed;
    only a subscription it does not pass is read (and one that is nowhere is told nothing)."""
    a, _, _ = nodes
    may_see = subscriber_visibility(a.guard, a.services.store)
    assert may_see([("unsaved", "Observation", "o1")], None, {"unsaved": "Organization/case-mgmt"}) == [True]
    assert may_see([("unsaved", "Observation", "o1")], None, {"unsaved": "Organization/no-agreement"}) == [False]
    assert may_see([("unsaved", "Observation", "o1")], None, {"unsaved": None}) == [True]  # the gateway's own
    assert may_see([("unsaved", "Observation", "o1")]) == [False]
