"""Unified record bench: `Patient/$everything` latency with consent on, for a 500-resource person.

The person has three Patient records, one per source (the hospital trust, the council, the
community provider), linked from the hospital record through `Patient.link`, and 500 resources
across them (Encounters, Observations, Conditions from the trust; ServiceRequests, Tasks and
CarePlans from the council; Observations, Encounters, Conditions from community care), each
tagged with its source organisation (`meta.tag`, source-organization) and pointing at its own
source's Patient record. Around them, other people with records of the same shape (default 100
people: 50,000 resources) so the indexes are not trivially small. All loaded through
`store.writer()` in transactions (not over HTTP). Synthetic people only.

The gateway runs as `care-gateway serve` (auth on: SMART token + consent on every read) in a
child process; one sequential httpx client asks `GET /fhir/Patient/<hospital record>/$everything
?_count=1000` (the whole record in one page) with a real client-credentials token of the
case-management organisation, which a sharing agreement (`build_agreement`, purpose TREAT)
covers for all three sources. Each answer must hold all 503 resources.

    .venv/bin/python -m bench record-everything            # 100 other people, 500 timed calls
    .venv/bin/python -m bench record-everything --quick    # 10 other people, 100 timed calls
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import update  # noqa: E402

from bench.fhir_core import NhsNumbers, Result, latency_row, percentile, timed  # noqa: E402
from bench.mllp_ingest import (  # noqa: E402
    add_common,
    backends,
    bench_settings,
    cpu_seconds,
    database,
    gateway_processes,
    log,
    render,
)
from gateway.codes import NHS_NUMBER_SYSTEM  # noqa: E402
from gateway.consent.agreements import SOURCE_ORGANIZATION_TAG_SYSTEM, build_agreement  # noqa: E402
from gateway.store.schema import outbox  # noqa: E402

GOAL_EVERYTHING_P95_MS = 50.0
CASE_ORG = "Organization/case-mgmt"
SOURCES = {
    # source org -> [(resource type, count)]; 500 resources per person in all
    "Organization/trust-rxx": [("Encounter", 60), ("Observation", 120), ("Condition", 20)],
    "Organization/la-e09": [("ServiceRequest", 70), ("Task", 70), ("CarePlan", 10)],
    "Organization/community-rcc": [("Observation", 90), ("Encounter", 50), ("Condition", 10)],
}
RESOURCES_PER_PERSON = sum(n for kinds in SOURCES.values() for _, n in kinds)
CLIENT_ID, CLIENT_SECRET = "case-app", "secret-case-app-0123456789"


@dataclass(frozen=True)
class Person:
    hospital_id: str  # the record $everything is asked for
    patient_ids: tuple[str, ...]
    nhs: str


def _resource(rtype: str, pid: str, org: str, i: int, rng: random.Random) -> dict[str, Any]:
    day = f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}"
    tag = {"meta": {"tag": [{"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": org}]}}
    subject = {"reference": f"Patient/{pid}"}
    ident = [{"system": f"https://bench.invalid/{org.split('/')[1]}/{rtype}", "value": f"{pid}-{i}"}]
    if rtype == "Encounter":
        cls = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": rng.choice(("AMB", "HH"))}
        return {
            "resourceType": rtype,
            **tag,
            "identifier": ident,
            "status": "finished",
            "class": cls,
            "subject": subject,
            "period": {"start": day, "end": day},
        }
    if rtype == "Observation":
        return {
            "resourceType": rtype,
            **tag,
            "identifier": ident,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": rng.choice(("8867-4", "59408-5", "9279-1"))}]},
            "subject": subject,
            "effectiveDateTime": day,
            "valueQuantity": {"value": rng.randint(10, 120), "unit": "/min"},
        }
    if rtype == "Condition":
        return {
            "resourceType": rtype,
            **tag,
            "identifier": ident,
            "subject": subject,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": rng.choice(("44054006", "13645005"))}]},
            "onsetDateTime": day,
        }
    if rtype == "ServiceRequest":
        return {
            "resourceType": rtype,
            **tag,
            "identifier": ident,
            "status": "active",
            "intent": "order",
            "subject": subject,
            "authoredOn": day,
        }
    if rtype == "Task":
        return {
            "resourceType": rtype,
            **tag,
            "identifier": ident,
            "status": "requested",
            "intent": "order",
            "for": subject,
            "authoredOn": day,
        }
    return {
        "resourceType": rtype,
        **tag,
        "identifier": ident,
        "status": "active",
        "intent": "plan",
        "subject": subject,
        "period": {"start": day},
    }


def load_people(store: Any, people: int, seed: int, log_every: int = 20) -> list[Person]:
    """`people` people of 3 linked records and 500 resources each, one transaction per person."""
    rng = random.Random(seed)
    numbers = NhsNumbers(seed)
    out = []
    t0 = time.perf_counter()
    for n in range(people):
        nhs = numbers.next()
        with store.writer() as uow:
            ids: dict[str, str] = {}
            hospital_org = "Organization/trust-rxx"
            for org in [o for o in SOURCES if o != hospital_org] + [hospital_org]:  # the hospital record last
                short = org.split("/")[1]
                links = [{"other": {"reference": f"Patient/{ids[o]}"}, "type": "seealso"} for o in ids]
                ids[org] = uow.create(
                    {
                        "resourceType": "Patient",
                        "meta": {"tag": [{"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": org}]},
                        "identifier": [
                            {"system": f"https://bench.invalid/{short}/patient-id", "value": f"{short}-{n:06d}"},
                            {"system": NHS_NUMBER_SYSTEM, "value": nhs},
                        ],
                        "name": [{"family": "Testperson", "given": ["Bench"]}],
                        "birthDate": f"{rng.randint(1925, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                        **({"link": links} if links else {}),
                    }
                ).id
            hospital = ids[hospital_org]
            i = 0
            for org, kinds in SOURCES.items():
                for rtype, count in kinds:
                    for _ in range(count):
                        uow.create(_resource(rtype, ids[org], org, i, rng))
                        i += 1
        out.append(Person(hospital, tuple(ids.values()), nhs))
        if (n + 1) % log_every == 0:
            log(f"  {n + 1}/{people} people loaded ({time.perf_counter() - t0:.0f} s)")
    return out


def prepare(url: str, data_dir: Path, others: int, seed: int) -> tuple[Person, list[Person]]:
    """Build services (migrates), add the client and agreement, load the people; (the person, all)."""
    from gateway.app import build_services
    from gateway.auth import ClientRepository

    services = build_services(bench_settings(url, data_dir, auth=True))
    store = services.store
    ClientRepository(store.engine).add(
        client_id=CLIENT_ID,
        name=CLIENT_ID,
        organization=CASE_ORG,
        role="case-manager",
        scopes=["system/*.rs"],
        secret=CLIENT_SECRET,
    )
    with store.writer() as uow:
        uow.update(build_agreement(id="isa-record", recipients=[CASE_ORG, *SOURCES], purposes=["TREAT"]))
    people = load_people(store, others + 1, seed)
    with store.engine.begin() as conn:  # as if long relayed: no start-up backlog for the event relay
        conn.execute(update(outbox).where(outbox.c.dispatched_at.is_(None)).values(dispatched_at=outbox.c.created_at))
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    store.engine.dispose()
    return people[0], people


def client_token(base: str) -> str:
    resp = httpx.post(f"{base}/auth/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    resp.raise_for_status()
    return str(resp.json()["access_token"])


RECORD_TYPES = "Patient,Encounter,Observation,Condition,ServiceRequest,Task,CarePlan"


def everything_call(
    client: httpx.Client, pid: str, expect: int, sizes: list[int], *, only_record_types: bool = False
) -> Callable[[], None]:
    params = {"_count": "1000", **({"_type": RECORD_TYPES} if only_record_types else {})}

    def call() -> None:
        resp = client.get(f"/Patient/{pid}/$everything", params=params)
        if resp.status_code != 200:
            raise RuntimeError(f"$everything returned {resp.status_code}: {resp.text[:300]}")
        got = len(resp.json().get("entry") or [])
        if got < expect:
            raise RuntimeError(f"$everything returned {got} entries, expected {expect}")
        sizes.append(got)

    return call


def run_backend(
    backend: str, others: int, samples: int, seed: int, postgres_url: str, *, only_record_types: bool = False
) -> Result:
    result = Result(backend)
    with database(backend, postgres_url) as (url, tmp):
        data_dir = tmp / "data"
        person, people = prepare(url, data_dir, others, seed)
        stored = len(people) * (RESOURCES_PER_PERSON + 3)
        with gateway_processes(url, data_dir) as (ep,):
            headers = {"Authorization": f"Bearer {client_token(ep.base)}"}
            with httpx.Client(base_url=ep.fhir, headers=headers, timeout=60) as client:
                sizes: list[int] = []
                call = everything_call(
                    client, person.hospital_id, RESOURCES_PER_PERSON + 3, sizes, only_record_types=only_record_types
                )
                timed(call, 20)  # warm-up
                log(f"{backend}: {samples} × $everything")
                server0, client0 = cpu_seconds(ep.pid), time.process_time()
                ms = timed(call, samples)
                server_ms = (cpu_seconds(ep.pid) - server0) * 1000 / samples
                client_ms = (time.process_time() - client0) * 1000 / samples
        latency_row(
            result,
            f"Patient/$everything, {RESOURCES_PER_PERSON} resources + 3 records, consent on"
            + (", `_type`=the record's 7 types" if only_record_types else ""),
            ms,
            GOAL_EVERYTHING_P95_MS,
        )
        result.notes.append(
            f"{stored:,} resources stored; p99 {percentile(ms, 0.99):.1f} ms over {samples} calls; answers held "
            f"{sizes[0]:,} entries on the first call and {sizes[-1]:,} on the last (AuditEvents of earlier reads)."
        )
        result.notes.append(
            f"CPU per call: gateway process {server_ms:.1f} ms (every thread: request, consent, audit writer), "
            f"client {client_ms:.1f} ms (request, JSON parse of the answer); load average {os.getloadavg()[0]:.1f}."
        )
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench record-everything",
        description="Patient/$everything p50/p95 with consent on, for a person with 500 resources across 3 sources.",
    )
    parser.add_argument("--others", type=int, help="other people of the same shape stored (default 100; quick 10)")
    parser.add_argument("--samples", type=int, help="timed calls (default 500; quick 100)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--record-types-only",
        action="store_true",
        help="ask with _type=<the 7 loaded types>, leaving out the AuditEvents each consent-on read adds",
    )
    add_common(parser)
    args = parser.parse_args(argv)
    others = args.others if args.others is not None else (10 if args.quick else 100)
    samples = args.samples or (100 if args.quick else 500)
    results = [
        run_backend(b, others, samples, args.seed, args.postgres_url, only_record_types=args.record_types_only)
        for b in backends(args.backend)
    ]
    command = ("python -m bench record-everything " + " ".join(argv)).strip()
    footer = [
        "`care-gateway serve` (1 process, auth on) in a child process on 127.0.0.1; one sequential httpx client "
        "with a client-credentials token (case-management organisation, agreement purpose TREAT over all three "
        "sources). `_count=1000`: the whole record in one page; every answer checked to hold all 503 resources.",
    ]
    print(render(f"Unified record bench — `{command}`", results, footer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
