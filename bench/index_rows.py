"""Index-rows bench: CPU per resource of turning one resource into its search index rows.

Every write runs `index_rows` in the writer's transaction (HL7 intake, FHIR transactions, social
care ingest), so its cost bounds every ingest path. This bench runs in-process, no database: the
resources are the fixtures as the intakes map them (HL7 v2 ADT, social-care CLD extracts, community
records), the demo bundles and a few synthetic vital-sign Observations (no fixture maps one).

It times two implementations in the same process, interleaved round by round, on CPU time:
- `interpreted`: the first session's writer (each parameter's paths walked by `paths.evaluate`,
  every parameter of the type tried; `index.index_rows_by_evaluation`), the baseline;
- `compiled`: `gateway.store.search.index.index_rows` as it is now.
It first checks both give exactly the same rows for every resource (the test
`tests/store/test_index_rows_oracle.py` checks the same).

    .venv/bin/python -m bench index-rows            # 7 rounds x 200 passes
    .venv/bin/python -m bench index-rows --quick    # 5 rounds x 40 passes
    .venv/bin/python -m bench index-rows --profile  # cProfile of the compiled writer, top 15
    .venv/bin/python -m bench index-rows --store    # and whole writes: store.writer(), 100 per tx, SQLite

Instructions per resource, which the machine's load does not change (callgrind; the difference
of two runs divided by 10 passes x the resources):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python -m bench index-rows --only compiled --passes 10   # and --passes 0
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Table  # noqa: E402

from gateway.mappings.community import map_records, read_records  # noqa: E402
from gateway.mappings.community import mapping as community_mapping  # noqa: E402
from gateway.mappings.hl7v2 import AdtMappingError, map_adt  # noqa: E402
from gateway.mappings.social_care import Accepted, map_row, read_csv, read_json  # noqa: E402
from gateway.mappings.source import SourceSystem  # noqa: E402
from gateway.paths import FIXTURES_DIR  # noqa: E402
from gateway.store.search.index import index_rows  # noqa: E402
from gateway.store.search.index import index_rows_by_evaluation as interpreted_rows  # noqa: E402
from gateway.store.search.kinds import IndexContext  # noqa: E402
from gateway.store.search.registry import SearchRegistry, default_registry  # noqa: E402

JSON = dict[str, Any]
Rows = dict[Table, list[dict[str, Any]]]
FOCUS = ("Patient", "Encounter", "Provenance", "Observation", "EpisodeOfCare", "CarePlan")
CTX = IndexContext(fhir_base="https://gateway.example.org/fhir")
_SOURCE = SourceSystem(
    source_id="bench-source",
    name="Bench source (synthetic)",
    kind="hospital",
    base_url="https://gateway.example.org",
    organization="Organization/bench-source",
)


def _observations() -> Iterator[JSON]:
    codes = (("8867-4", "Heart rate", 72, "/min"), ("59408-5", "SpO2", 96, "%"), ("9279-1", "Resp rate", 18, "/min"))
    for i, (code, text, value, unit) in enumerate(codes):
        yield {
            "resourceType": "Observation",
            "meta": {"tag": [{"system": "https://gateway.example.org/source", "code": "virtual-ward"}]},
            "identifier": [{"system": "https://bench.invalid/obs", "value": f"obs-{i}"}],
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": text}], "text": text},
            "subject": {"reference": "Patient/bench-1"},
            "encounter": {"reference": "Encounter/bench-1"},
            "effectiveDateTime": f"2024-07-0{i + 1}T09:30:00+01:00",
            "issued": f"2024-07-0{i + 1}T09:31:00Z",
            "performer": [{"reference": "Practitioner/bench-1"}],
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        }
    yield {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/bench-1"},
        "effectivePeriod": {"start": "2024-07-01T09:30:00Z", "end": "2024-07-01T09:35:00Z"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 150}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 90}},
        ],
    }


def fixture_resources() -> list[JSON]:
    """Every resource the fixtures give, each with an id and stored-style meta (as the writer sees them)."""
    found: list[JSON] = []
    for path in sorted((FIXTURES_DIR / "hl7v2").glob("*.hl7")):
        try:
            m = map_adt(path.read_bytes(), source=_SOURCE)
        except AdtMappingError:
            continue
        found += [m.patient, m.provenance] + ([m.encounter] if m.encounter else [])
    for path in sorted((FIXTURES_DIR / "social_care").iterdir()):
        if path.suffix not in (".csv", ".json"):
            continue
        data = path.read_bytes()
        for row in read_json(data) if path.suffix == ".json" else read_csv(data):
            result = map_row(row, source=_SOURCE)
            if isinstance(result, Accepted):
                found += result.resources
    for name in ("contact_records.json", "contact_records_bad.json"):
        for rec in map_records(read_records((FIXTURES_DIR / "community" / name).read_bytes()), source=_SOURCE):
            if isinstance(rec, community_mapping.Accepted):
                found += rec.resources
    bundle = json.loads((FIXTURES_DIR / "community" / "provider_transaction_bundle.json").read_text(encoding="utf-8"))
    found += [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
    for path in sorted((FIXTURES_DIR / "demo").glob("*.json")):
        found += [e["resource"] for e in json.loads(path.read_text(encoding="utf-8"))["entry"]]
    found += list(_observations())
    out = []
    for n, res in enumerate(found):
        res = json.loads(json.dumps(res))  # a private copy: mappings may share sub-objects
        res.setdefault("id", f"bench-{n}")
        meta = res.setdefault("meta", {})
        meta.setdefault("versionId", "1")
        meta.setdefault("lastUpdated", "2024-07-01T10:00:00.000Z")
        out.append(res)
    return out


Writer = Callable[[JSON, SearchRegistry, IndexContext], Rows]


def _cpu_us_per_resource(writer: Writer, resources: list[JSON], registry: SearchRegistry, passes: int) -> float:
    t0 = time.process_time_ns()
    for _ in range(passes):
        for res in resources:
            writer(res, registry, CTX)
    return (time.process_time_ns() - t0) / 1000 / (passes * len(resources))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench index-rows", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 rounds x 40 passes")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--passes", type=int, default=200)
    ap.add_argument("--profile", action="store_true", help="cProfile the compiled writer over all resources")
    ap.add_argument("--store", action="store_true", help="also whole writes through store.writer() on SQLite")
    ap.add_argument(
        "--only",
        choices=("interpreted", "compiled"),
        help="just run this writer --passes times over all resources, untimed (for valgrind --tool=callgrind)",
    )
    args = ap.parse_args(argv)
    rounds, passes = (5, 40) if args.quick else (args.rounds, args.passes)
    registry = default_registry()
    resources = fixture_resources()
    for res in resources:  # same rows, or the figures mean nothing
        if index_rows(res, registry, CTX) != interpreted_rows(res, registry, CTX):
            print(f"rows differ for {res['resourceType']}/{res['id']}", file=sys.stderr)
            return 1
    writers: dict[str, Writer] = {"interpreted": interpreted_rows, "compiled": index_rows}
    if args.only:
        for _ in range(args.passes):
            for res in resources:
                writers[args.only](res, registry, CTX)
        return 0
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(passes):
            for res in resources:
                index_rows(res, registry, CTX)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return 0
    groups: dict[str, list[JSON]] = {t: [r for r in resources if r["resourceType"] == t] for t in FOCUS}
    groups[f"all fixtures ({len(resources)})"] = resources
    best: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for label, group in groups.items():
            for name, writer in writers.items():
                us = _cpu_us_per_resource(writer, group, registry, passes)
                best[label, name] = min(best.get((label, name), us), us)
    print(f"index_rows CPU µs per resource (best of {rounds} rounds x {passes} passes, process CPU time)\n")
    print("| resources | n | interpreted µs | compiled µs | speed-up |")
    print("|---|---|---|---|---|")
    for label, group in groups.items():
        before, after = best[label, "interpreted"], best[label, "compiled"]
        print(f"| {label} | {len(group)} | {before:.1f} | {after:.1f} | {before / after:.2f}× |")
    if args.store:
        store_writes(resources, writers, rounds)
    return 0


def store_writes(resources: list[JSON], writers: dict[str, Writer], rounds: int) -> None:
    """CPU per resource of whole writes (new ids, 100 per transaction) with each index writer in turn."""
    import gateway.store.api as store_api
    from bench.fhir_core import bench_settings
    from gateway.app import build_services

    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(bench_settings(f"sqlite:///{tmp}/bench.db", Path(tmp), 0))
        original = store_api.index_rows
        try:
            for r in range(rounds):
                for name, writer in writers.items():
                    store_api.index_rows = writer  # the store's own writer, swapped for the A/B
                    batch = [{**res, "id": f"{name}-{r}-{n}"} for n, res in enumerate(resources)]
                    t0 = time.process_time_ns()
                    for i in range(0, len(batch), 100):
                        with services.store.writer() as uow:
                            for res in batch[i : i + 100]:
                                uow.update(json.loads(json.dumps(res)))
                    us = (time.process_time_ns() - t0) / 1000 / len(batch)
                    best[name] = min(best.get(name, us), us)
        finally:
            store_api.index_rows = original
    before, after = best["interpreted"], best["compiled"]
    print(
        f"\nwhole writes, store.writer() on SQLite, 100 per transaction, {len(resources)} resources, best of {rounds}:"
    )
    print("| writer | CPU µs per resource |\n|---|---|")
    print(f"| interpreted | {before:.0f} |\n| compiled | {after:.0f} |")
    print(f"compiled index rows save {before - after:.0f} µs, {(before - after) / before:.0%} of a write's CPU")


if __name__ == "__main__":
    raise SystemExit(main())
