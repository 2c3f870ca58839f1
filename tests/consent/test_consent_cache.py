"""Decision cache keys change whenever anything a decision depends on changes."""

from __future__ import annotations

import copy
from types import SimpleNamespace

from gateway.consent import decision_cache_key, default_policy, load_compartment, parse_policy


def test_key_is_stable_and_sensitive_to_every_input(b: SimpleNamespace) -> None:
    policy = default_policy()
    consent = b.consent({"type": "deny"})
    agreement = b.agreement_for(b.CASE_TEAM)

    def key(**kw: object) -> str:
        args: dict[str, object] = {
            "consents": [consent],
            "agreements": [agreement],
            "policy": policy,
            "compartment": load_compartment(),
        }
        args.update(kw)
        ctx = args.pop("ctx", b.caller())
        pid = args.pop("pid", "p1")
        return decision_cache_key(ctx, pid, **args)  # type: ignore[arg-type]

    base = key()
    assert base.startswith("pdp:v1:") and base == key()
    changed_consent = copy.deepcopy(consent)
    changed_consent["provision"]["type"] = "permit"
    raw = copy.deepcopy(policy.raw)
    raw["version"] = "next"
    variants = [
        key(pid="p2"),
        key(ctx=b.caller(b.COUNCIL)),
        key(ctx=b.caller(role="clinician")),
        key(ctx=b.caller(purpose_of_use="BTG", break_glass_reason="r")),
        key(ctx=b.caller(scopes=frozenset({"system/*.rs"}))),
        key(consents=[changed_consent]),
        key(consents=[]),
        key(agreements=[b.agreement_for(b.CASE_TEAM, purposes=["COC"])]),
        key(policy=parse_policy(raw)),
        key(resource=b.encounter()),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_consent_order_does_not_matter(b: SimpleNamespace) -> None:
    one, two = b.consent({"type": "deny"}, cid="a"), b.consent({"type": "permit"}, cid="b")
    policy = default_policy()
    first = decision_cache_key(b.caller(), "p1", consents=[one, two], agreements=[], policy=policy)
    second = decision_cache_key(b.caller(), "p1", consents=[two, one], agreements=[], policy=policy)
    assert first == second
