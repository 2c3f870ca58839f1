"""Hot read statements bind only their inputs, so PostgreSQL plans their prepared form once.

PostgreSQL re-plans a prepared statement on each execution while its generic plan looks dearer than
the plans made for each execution's values. Fixed values bound as parameters ('Consent', 'patient')
made the consent engine's policy-inputs statement and `$everything`'s record statements look dear:
in `bench consent-overhead --in-process --backend postgres` every one of 2,554 executions of the
policy-inputs statement was planned afresh (~0.2 ms each). See gateway/store/inline.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from gateway.fhir.policy_inputs import _STATEMENTS
from gateway.record import everything
from gateway.store.inline import inline
from gateway.store.schema import resource


def _bound(stmt: Any) -> set[str]:
    return set(stmt.compile(dialect=postgresql.dialect()).params)


def test_policy_inputs_bind_only_the_patients_and_the_client() -> None:
    assert _bound(_STATEMENTS[True]) == {"pids", "client"}


@pytest.mark.parametrize(
    ("stmt", "inputs"),
    [
        (everything._links_statement("postgresql"), {"frontier"}),
        (everything._provenance_statement("postgresql"), {"target_ids"}),
        (
            everything._record_statement("postgresql", (("Observation", ("patient", "subject")),), True, False),
            {everything._PATIENT_IDS},
        ),
        (everything._fetch_statement("postgresql", ("CarePlan", "Encounter"), False), {"ids_0", "ids_1"}),
        (everything._referrers_statement("postgresql", "Encounter", ("Observation",)), {"target_ids"}),
        (everything._targets_statement("postgresql", ("CarePlan",), ("subject",), ("Patient",)), {"ids_0"}),
        (everything._dates_statement("postgresql", "Encounter"), {"ids"}),
    ],
    ids=["links", "provenance", "record", "fetch", "referrers", "targets", "dates"],
)
def test_everything_statements_bind_only_their_inputs(stmt: Any, inputs: set[str]) -> None:
    assert _bound(stmt) == inputs


def test_inline_writes_a_literal() -> None:
    stmt = select(resource.c.res_id).where(resource.c.res_type == inline("Patient"))
    assert "res_type = 'Patient'" in str(stmt)


@pytest.mark.parametrize("value", ["O'Brien", "a b", "back\\slash", "", "semi;colon"])
def test_inline_refuses_what_would_need_quoting(value: str) -> None:
    with pytest.raises(ValueError):
        inline(value)
