"""Identity matching bench: quality on the synthetic corpus, beside a textbook baseline, and $match latency.

Quality: every record of fixtures/identity/corpus.jsonl is matched against all the others; a pair
counts as linked when graded certain or probable (both link: probable provisionally, with a review
Task). Precision and recall are over unordered record pairs against the corpus truth labels;
pairs blocking never brought together count as missed.

Baseline: recordlinkage's ECM classifier (unsupervised Fellegi-Sunter, binary agreement vectors),
fed the same normalised fields, with union blocking on birth date, surname Soundex + birth year and
postcode. Install with `pip install -e '.[bench]'`.

Latency: 100k generated Patients are indexed, then noisy copies (and strangers) go through the
whole $match path: Parameters parsed, PersonRecord built, candidates scored, Bundle built.

    .venv/bin/python bench/identity_match.py
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.identity.blocking import InMemoryCandidateIndex, phonetic  # noqa: E402
from gateway.identity.match_bundle import run_match  # noqa: E402
from gateway.identity.matcher import Grade, Matcher  # noqa: E402
from gateway.identity.person import PersonRecord  # noqa: E402

LINKED = (Grade.CERTAIN, Grade.PROBABLE)


def load_generator() -> ModuleType:
    path = ROOT / "fixtures" / "identity" / "generate_corpus.py"
    spec = importlib.util.spec_from_file_location("generate_corpus", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_corpus"] = module
    spec.loader.exec_module(module)
    return module


def quality(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def ours(records: dict[str, PersonRecord], matcher: Matcher) -> dict[str, set[tuple[str, str]]]:
    index = InMemoryCandidateIndex()
    for record_id, record in records.items():
        index.add(record_id, record)
    linked: set[tuple[str, str]] = set()
    certain: set[tuple[str, str]] = set()
    for record_id, record in records.items():
        for result in matcher.match(record, index, limit=None, min_grade=Grade.PROBABLE, exclude={record_id}):
            pair = (record_id, result.record_id) if record_id < result.record_id else (result.record_id, record_id)
            linked.add(pair)
            if result.grade is Grade.CERTAIN:
                certain.add(pair)
    return {"linked": linked, "certain": certain}


def baseline(records: dict[str, PersonRecord]) -> set[tuple[str, str]]:
    import pandas as pd
    import recordlinkage

    rows = []
    for record_id, r in records.items():
        rows.append(
            {
                "id": record_id,
                "nhs": r.nhs_number,
                "given": r.first_given or None,
                "family": r.family_key or None,
                "birth": r.birth_date_text or (f"{r.birth_year}" if r.birth_year else None),
                "year": str(r.birth_year) if r.birth_year else None,
                "sex": r.sex,
                "postcode": r.postcodes[0] if r.postcodes else None,
                "family_sx": phonetic(r.family_parts[0]) if r.family_parts else None,
            }
        )
    frame = pd.DataFrame(rows).set_index("id")
    indexer = recordlinkage.Index()
    indexer.block("birth")
    indexer.block(["family_sx", "year"])
    indexer.block("postcode")
    pairs = indexer.index(frame)
    compare = recordlinkage.Compare()
    compare.exact("nhs", "nhs", label="nhs")
    compare.string("given", "given", method="jarowinkler", threshold=0.85, label="given")
    compare.string("family", "family", method="jarowinkler", threshold=0.85, label="family")
    compare.exact("birth", "birth", label="birth")
    compare.exact("sex", "sex", label="sex")
    compare.exact("postcode", "postcode", label="postcode")
    features = compare.compute(pairs, frame)
    matches = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    return {(a, b) if a < b else (b, a) for a, b in matches}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(gen_module: ModuleType, people: int, queries: int, seed: int, matcher: Matcher) -> dict[str, Any]:
    generator = gen_module.Generator(seed)
    rng = random.Random(seed)
    persons = [generator.person() for _ in range(people)]
    patients: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    index = InMemoryCandidateIndex()
    for person in persons:
        row = generator.record(person, "hospital").to_json()
        row["id"] = person.person_id
        patient = gen_module.to_patient(row)
        patients[person.person_id] = patient
        index.add(person.person_id, PersonRecord.from_patient(patient))
    build_seconds = time.perf_counter() - started
    outsiders = [generator.person() for _ in range(queries // 10)]
    asked = [(p, True) for p in rng.sample(persons, queries - len(outsiders))] + [(p, False) for p in outsiders]
    rng.shuffle(asked)
    timings: list[float] = []
    found = 0
    for person, known in asked:
        query = gen_module.to_patient(generator.record(person, "nhs-111").to_json())
        parameters = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": query}]}
        t0 = time.perf_counter()
        bundle = run_match(parameters, index=index, matcher=matcher, resource_for=patients.__getitem__)
        timings.append((time.perf_counter() - t0) * 1000)
        if known and any(e["resource"]["id"] == person.person_id for e in bundle.get("entry", [])):
            found += 1
    known_count = sum(1 for _, k in asked if k)
    return {
        "people": people,
        "queries": len(asked),
        "index_build_s": build_seconds,
        "p50": percentile(timings, 0.50),
        "p95": percentile(timings, 0.95),
        "p99": percentile(timings, 0.99),
        "mean": statistics.fmean(timings),
        "found": found / known_count if known_count else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None, help="corpus JSONL (default: the committed one)")
    parser.add_argument(
        "--generate", type=int, metavar="N", help="instead of the committed corpus, generate one of N index persons"
    )
    parser.add_argument("--corpus-seed", type=int, default=99, help="seed for --generate")
    parser.add_argument("--people", type=int, default=100_000, help="Patients in the $match latency index")
    parser.add_argument("--queries", type=int, default=2_000, help="$match calls timed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-baseline", action="store_true", help="skip the recordlinkage baseline")
    parser.add_argument("--no-latency", action="store_true", help="skip the 100k-Patient latency run")
    args = parser.parse_args(argv)

    gen_module = load_generator()
    if args.generate:
        rows = [r.to_json() for r in gen_module.Generator(args.corpus_seed).corpus(args.generate)]
    else:
        rows = gen_module.load_corpus(args.corpus or gen_module.CORPUS_FILE)
    truth = gen_module.true_pairs(rows)
    records = {row["id"]: PersonRecord.from_patient(gen_module.to_patient(row)) for row in rows}
    matcher = Matcher()
    print(f"corpus: {len(rows)} records, {len({r['person'] for r in rows})} people, {len(truth)} true pairs\n")

    table: list[tuple[str, float, float, float, int, float]] = []
    t0 = time.perf_counter()
    predicted = ours(records, matcher)
    elapsed = time.perf_counter() - t0
    for label, key in (("ours: certain + probable", "linked"), ("ours: certain only", "certain")):
        table.append((label, *quality(predicted[key], truth), len(predicted[key]), elapsed))
    if not args.no_baseline:
        try:
            t0 = time.perf_counter()
            base = baseline(records)
            table.append(
                ("recordlinkage ECM (textbook F-S)", *quality(base, truth), len(base), time.perf_counter() - t0)
            )
        except ImportError:
            print("baseline skipped: install the bench extra (pip install -e '.[bench]')\n")

    print(f"{'matcher':<34} {'precision':>9} {'recall':>7} {'F1':>7} {'links':>6} {'time s':>7}")
    for label, precision, recall, f1, links, seconds in table:
        print(f"{label:<34} {precision:>9.4f} {recall:>7.4f} {f1:>7.4f} {links:>6} {seconds:>7.1f}")
    print("(over record pairs; links = pairs linked; the baseline sees the same normalised fields)")

    if not args.no_latency:
        lat = latency(gen_module, args.people, args.queries, args.seed, matcher)
        print(
            f"\n$match over {lat['people']:,} Patients ({lat['queries']} calls, 10% strangers; "
            f"index built in {lat['index_build_s']:.1f} s)"
        )
        print(f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'known found':>12}")
        print(f"{lat['p50']:>8.2f} {lat['p95']:>8.2f} {lat['p99']:>8.2f} {lat['mean']:>8.2f} {lat['found']:>12.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
