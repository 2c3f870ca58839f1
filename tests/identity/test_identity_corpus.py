"""Matching quality on the committed synthetic corpus (fixtures/identity/corpus.jsonl).

Asserts the achieved quality — precision >= 0.998 and recall >= 0.99 over record pairs, twins
never linked — not timing; bench/identity_match.py measures latency and the baseline.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.matcher import Grade, Matcher
from gateway.identity.person import PersonRecord
from gateway.paths import FIXTURES_DIR

GENERATOR = FIXTURES_DIR / "identity" / "generate_corpus.py"


@lru_cache(maxsize=1)
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_corpus", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_corpus", module)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def linked_pairs() -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    gen = generator()
    rows = gen.load_corpus()
    records = {row["id"]: PersonRecord.from_patient(gen.to_patient(row)) for row in rows}
    index = InMemoryCandidateIndex()
    for record_id, record in records.items():
        index.add(record_id, record)
    matcher = Matcher()
    pairs: set[tuple[str, str]] = set()
    for record_id, record in records.items():
        for r in matcher.match(record, index, limit=None, min_grade=Grade.PROBABLE, exclude={record_id}):
            pairs.add((min(record_id, r.record_id), max(record_id, r.record_id)))
    return rows, pairs


def test_corpus_is_small_and_labelled() -> None:
    path = Path(generator().CORPUS_FILE)
    assert path.stat().st_size < 1_000_000
    rows = generator().load_corpus()
    assert 2000 <= len(rows) <= 5000
    assert all(row["person"] and row["id"] for row in rows)
    noise = {kind for row in rows for kind in row.get("noise", [])}
    assert {"nickname", "swapped_names", "transposed_date", "moved", "family_typo", "placeholder_nhs"} <= noise


def test_generator_is_deterministic_and_reproduces_the_committed_corpus() -> None:
    gen = generator()
    again = [r.to_json() for r in gen.Generator(2024).corpus(1300)]
    assert again == gen.load_corpus()


def test_precision_and_recall_meet_the_goal() -> None:
    rows, predicted = linked_pairs()
    truth = generator().true_pairs(rows)
    true_positives = len(predicted & truth)
    precision = true_positives / len(predicted)
    recall = true_positives / len(truth)
    assert precision >= 0.998, precision
    assert recall >= 0.99, recall


def test_twins_spouses_and_namesake_sons_are_never_linked() -> None:
    rows, predicted = linked_pairs()
    person_of = {row["id"]: row["person"] for row in rows}
    related: set[frozenset[str]] = set()
    kinds: set[str] = set()
    for row in rows:
        if "relation" in row:
            kind, other = row["relation"].split(":", 1)
            kinds.add(kind)
            related.add(frozenset((row["person"], other)))
    assert kinds == {"twin-of", "spouse-of", "son-of"}
    linked_people = {frozenset((person_of[a], person_of[b])) for a, b in predicted}
    assert not related & linked_people
