"""The compiled index writer (`index_rows` over `plan.py`) gives exactly the rows of the first
session's interpreting writer, kept here verbatim as the oracle: for every resource the fixtures
give (HL7 v2 ADT, social-care CLD, community records and bundle, demo bundles), for each of them
with one top-level element removed, and for seeded random resources built from the names the
search parameters use (choice variants, `where` filters, nulls, odd types included). Then, on SQLite
and PostgreSQL, the rows the store writes for the demo bundles are those rows."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Table, select

from gateway.fhir.services import Services
from gateway.mappings.community import map_records, read_records
from gateway.mappings.community import mapping as community_mapping
from gateway.mappings.hl7v2 import AdtMappingError, map_adt
from gateway.mappings.social_care import Accepted, map_row, read_csv, read_json
from gateway.mappings.source import SourceSystem
from gateway.paths import FIXTURES_DIR
from gateway.store.search.index import index_rows
from gateway.store.search.index import index_rows_by_evaluation as interpreted_rows
from gateway.store.search.kinds import KINDS, IndexContext
from gateway.store.search.paths import Step
from gateway.store.search.registry import SearchRegistry, default_registry

JSON = dict[str, Any]
Rows = dict[Table, list[dict[str, Any]]]
CTX = IndexContext(fhir_base="https://gateway.example.org/fhir")
SOURCE = SourceSystem(
    source_id="oracle-source",
    name="Oracle source (synthetic)",
    kind="hospital",
    base_url="https://gateway.example.org",
    organization="Organization/oracle-source",
)


def _mapped() -> Iterator[JSON]:
    for path in sorted((FIXTURES_DIR / "hl7v2").glob("*.hl7")):
        try:
            m = map_adt(path.read_bytes(), source=SOURCE)
        except AdtMappingError:
            continue
        yield from [m.patient, m.provenance, *([m.encounter] if m.encounter else [])]
    for path in sorted((FIXTURES_DIR / "social_care").iterdir()):
        if path.suffix in (".csv", ".json"):
            data = path.read_bytes()
            for row in read_json(data) if path.suffix == ".json" else read_csv(data):
                if isinstance(result := map_row(row, source=SOURCE), Accepted):
                    yield from result.resources
    for name in ("contact_records.json", "contact_records_bad.json"):
        for rec in map_records(read_records((FIXTURES_DIR / "community" / name).read_bytes()), source=SOURCE):
            if isinstance(rec, community_mapping.Accepted):
                yield from rec.resources
    bundle = json.loads((FIXTURES_DIR / "community" / "provider_transaction_bundle.json").read_text("utf-8"))
    yield from (e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict))


def _demo() -> list[JSON]:
    return [
        e["resource"]
        for path in sorted((FIXTURES_DIR / "demo").glob("*.json"))
        for e in json.loads(path.read_text("utf-8"))["entry"]
    ]


def fixture_resources() -> list[JSON]:
    out = []
    for n, res in enumerate([*_mapped(), *_demo()]):
        res = copy.deepcopy(res)
        res.setdefault("id", f"oracle-{n}")
        res.setdefault("meta", {}).setdefault("lastUpdated", "2024-07-01T10:00:00.000Z")
        out.append(res)
    return out


FIXTURES = fixture_resources()


def _same(resource: JSON) -> None:
    registry = default_registry()
    try:
        want: Rows | BaseException = interpreted_rows(copy.deepcopy(resource), registry, CTX)
    except Exception as exc:  # the kinds may reject odd values: then both must, alike
        want = exc
    try:
        got: Rows | BaseException = index_rows(copy.deepcopy(resource), registry, CTX)
    except Exception as exc:
        got = exc
    if isinstance(want, BaseException) or isinstance(got, BaseException):
        assert type(got) is type(want) and str(got) == str(want), resource
        return
    assert got == want, resource
    # same tables in the same order, same rows in the same order (and the same column order)
    assert [(t.name, [list(r.items()) for r in rs]) for t, rs in got.items()] == [
        (t.name, [list(r.items()) for r in rs]) for t, rs in want.items()
    ]


def test_the_fixtures_cover_the_types_that_ingest_writes() -> None:
    types = {r["resourceType"] for r in FIXTURES}
    assert {"Patient", "Encounter", "EpisodeOfCare", "CarePlan", "Provenance", "QuestionnaireResponse"} <= types
    assert len(FIXTURES) > 300


@pytest.mark.parametrize("resource", FIXTURES, ids=lambda r: f"{r['resourceType']}-{r['id']}")
def test_compiled_rows_equal_interpreted_rows_for_every_fixture_resource(resource: JSON) -> None:
    _same(resource)


def test_and_with_any_one_top_level_element_removed() -> None:
    for resource in FIXTURES:
        for key in list(resource):
            if key not in ("resourceType", "id"):
                _same({k: v for k, v in resource.items() if k != key})


# --- seeded random resources from the parameters' own element names ---------------------------

_LEAVES: list[Any] = [
    None,
    True,
    0,
    7.5,
    "",
    "  ",
    "Zoë Ñandú",
    "final",
    "2024",
    "2024-07",
    "2024-07-01",
    "2024-07-01T09:30:00+01:00",
    "2024-07-01T09:30:00.123Z",
    "not a date",
    "http://example.org/fhir/Questionnaire/q|1.0",
    {"start": "2024-07-01", "end": "2024-07-02T10:00:00Z"},
    {"start": "2024-07-01"},
    {"system": "http://loinc.org", "code": "8867-4"},
    {"coding": [{"system": "urn:s", "code": "a"}, {"system": "urn:s", "code": "a"}, {"code": "b"}]},
    {"system": "phone", "value": "01632 960000"},
    {"system": "email", "value": "a@example.org"},
    {"value": 72, "system": "http://unitsofmeasure.org", "code": "/min"},
    {"reference": "Patient/p1"},
    {"reference": "Practitioner/d1/_history/2"},
    {"reference": "https://gateway.example.org/fhir/Patient/p2"},
    {"reference": "https://elsewhere.example.org/fhir/Patient/p3"},
    {"reference": "urn:uuid:0f3c"},
    {"reference": "#contained"},
    {"type": "Patient", "identifier": {"value": "x"}},
    {"family": "Núñez", "given": ["Ada", None, 3], "prefix": ["Dr"]},
    {"line": ["1 Test Street"], "city": "Leeds", "postalCode": "LS1 1AA"},
    ["x", None, {"code": "c"}],
]
_SUFFIXES = ("", "", "", "DateTime", "Boolean", "Period", "Quantity", "Reference", "String")


def _names(registry: SearchRegistry, rtype: str) -> list[str]:
    names: set[str] = set()
    for param in registry.indexed_params(rtype):
        for path in param.paths:
            for step in path.steps:
                names.add(step.name)
                if step.field_filter is not None:
                    names.add(step.field_filter[0])
    return sorted(names)


def _random_value(rng: random.Random, names: list[str], depth: int) -> Any:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return copy.deepcopy(rng.choice(_LEAVES))
    if roll < 0.75:
        return _random_node(rng, names, depth + 1)
    return [_random_value(rng, names, depth + 1) for _ in range(rng.randint(0, 3))]


def _random_node(rng: random.Random, names: list[str], depth: int) -> JSON:
    node: JSON = {}
    for _ in range(rng.randint(1, 6)):
        node[rng.choice(names) + rng.choice(_SUFFIXES)] = _random_value(rng, names, depth)
    return node


def _graft(rng: random.Random, node: JSON, steps: list[Step], names: list[str]) -> None:
    """Put a random value at the end of `steps` under `node` (as a list or not, choice-typed or not)."""
    step, rest = steps[0], steps[1:]
    key = step.name
    if step.choice_type is not None and rng.random() < 0.8:
        key += step.choice_type[0].upper() + step.choice_type[1:]
    elif rng.random() < 0.15:
        key += rng.choice(_SUFFIXES[3:])
    child: Any
    if rest:
        child = _random_node(rng, names, 2) if rng.random() < 0.3 else {}
        _graft(rng, child, rest, names)
    else:
        child = _random_value(rng, names, 1)
    if step.field_filter is not None and isinstance(child, dict):
        field, wanted = step.field_filter
        child[field] = wanted if rng.random() < 0.7 else "other"
    if rng.random() < 0.4:
        child = [child, copy.deepcopy(child)] if rng.random() < 0.3 else [child]
    node[key] = child


def test_and_for_seeded_random_resources_of_every_indexed_type() -> None:
    registry = default_registry()
    rng = random.Random(20261125)
    for rtype in sorted(registry.resource_types):
        names = [*_names(registry, rtype), "system", "value", "code", "reference", "meta", "tag", "profile"]
        paths = [p for param in registry.indexed_params(rtype) for p in param.paths if p.steps]
        for n in range(100):
            resource = _random_node(rng, names, 0)
            for path in paths:
                if rng.random() < 0.5:
                    _graft(rng, resource, list(path.steps), names)
            resource.update(resourceType=rtype, id=f"r{n}")
            _same(resource)


def test_every_kind_is_covered_by_the_fixtures() -> None:
    registry = default_registry()
    tables = {t for r in FIXTURES for t in index_rows(r, registry, CTX)}
    assert {KINDS[k].table for k in ("token", "string", "date", "reference", "uri")} <= tables


# --- what the store writes ----------------------------------------------------------------------


def test_the_store_writes_exactly_those_rows(services: Services) -> None:
    registry = services.store.registry
    ctx = services.store.index_ctx
    with services.store.writer() as uow:
        stored = [uow.update(copy.deepcopy(r))[0] for r in _demo()]
    tables = [KINDS[k].table for k in ("token", "string", "date", "reference", "number", "uri")]
    with services.store.engine.connect() as conn:
        for s in stored:
            want = interpreted_rows(s.json(), registry, ctx)
            for table in tables:
                cols = [c for c in table.c if c.name not in ("id", "seq")]
                query = select(*cols).where(table.c.res_type == s.type, table.c.res_id == s.id)
                got = sorted((tuple(row) for row in conn.execute(query)), key=repr)
                expected = sorted((tuple(r[c.name] for c in cols) for r in want.get(table, [])), key=repr)
                assert got == expected, (s.type, s.id, table.name)
