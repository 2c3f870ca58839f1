"""Consent overhead bench: search and `$everything` latency with consent enforcement on vs off.

Same data, same process type, one run: the record bench's data set (a person with three linked
records and 500 resources across three sources, among other people of the same shape; see
`bench/record_everything.py`) is loaded once, then two `care-gateway serve` children run on that
one database: one with `GATEWAY_AUTH_REQUIRED=true` (SMART token checked, consent decided on
every resource, audit written), one with it false (open embedded mode). Requests alternate
on / off, one at a time (which side goes first alternates too), so both see the same machine
state; the added time is p95(on) / p95(off) − 1. On a shared 2-core machine one run's p95 ratio
moves by tens of points, so each row also gives:
- a 90 % interval of that ratio from a paired bootstrap (each on call resampled with the off call
  made next to it, so a load spike stays on both sides): a figure near the goal inside a wide
  interval is not shown either way;
- the p50 difference, steadier than the p95s;
- each server's CPU per call (user + system of the whole process over the timed calls: the on
  side's audit writer included, read after a pause longer than its batching delay, both sides
  alike), which load on other cores barely moves.

Requests (each must return what the data set holds):
- `GET /fhir/Observation?patient=<hospital record>&_count=50` (compartment search, 120 match);
- `GET /fhir/Patient?identifier=<NHS system>|<number>` (token search: the person's 3 records);
- `GET /fhir/Patient/<hospital record>/$everything?_count=1000&_type=<the record's 7 types>` (503
  resources; `_type` leaves out the AuditEvents that consent-on reads keep adding to the record).

    .venv/bin/python -m bench consent-overhead            # 100 other people, 500 samples each
    .venv/bin/python -m bench consent-overhead --quick    # 10 other people, 200 samples each
    .venv/bin/python -m bench consent-overhead --quick --in-process   # CPU per request instead

`--in-process` measures what wall-clock p95 cannot on a shared machine: the CPU (this thread's
`time.thread_time`, best of 7 rounds) of each request's work in its read transaction, the same
calls the REST handlers make (`search_as`, `run_patient_everything`), with the consent guard and
the check that the client is still enabled, and without them, on one database; the SQL statements
each sends; and the CPU of storing one AuditEvent made as the guard makes it (its id included),
in batches of 40 on top of 10,000 already stored (the background writer's share of every consent-on
request). HTTP, the (cached) token check and JSON rendering are left out.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.fhir_core import Result, percentile  # noqa: E402
from bench.mllp_ingest import (  # noqa: E402
    add_common,
    backends,
    cpu_seconds,
    database,
    gateway_processes,
    log,
    render,
)
from bench.record_everything import (  # noqa: E402
    CLIENT_ID,
    RECORD_TYPES,
    RESOURCES_PER_PERSON,
    Person,
    client_token,
    prepare,
)
from gateway.codes import NHS_NUMBER_SYSTEM  # noqa: E402

GOAL_ADDED = 0.20  # at most 20 % added at p95
AUDIT_BACKLOG = 10_000  # AuditEvents stored before the in-process bench times storing more
SETTLE_S = 0.5  # longer than the audit writer's batching delay (200 ms) and a batch's write
# `_type` (RECORD_TYPES) keeps the answer at the 503 loaded resources: with consent on, every read
# writes an AuditEvent naming the patient, and `$everything` would return those too, so the "on"
# answer would grow call by call while the "off" one (no audit) stays put.


def requests_for(person: Person) -> list[tuple[str, str, dict[str, str], int]]:
    """(label, path, params, entries expected at least)."""
    return [
        (
            "search Observation?patient= (_count=50)",
            "/Observation",
            {"patient": person.hospital_id, "_count": "50"},
            50,
        ),
        ("search Patient?identifier= (NHS number)", "/Patient", {"identifier": f"{NHS_NUMBER_SYSTEM}|{person.nhs}"}, 3),
        (
            "Patient/$everything (_count=1000, _type=the record's types)",
            f"/Patient/{person.hospital_id}/$everything",
            {"_count": "1000", "_type": RECORD_TYPES},
            RESOURCES_PER_PERSON + 3,
        ),
    ]


def caller(client: httpx.Client, path: str, params: dict[str, str], expect: int) -> Callable[[], float]:
    def call() -> float:
        t0 = time.perf_counter()
        resp = client.get(path, params=params)
        ms = (time.perf_counter() - t0) * 1000
        if resp.status_code != 200:
            raise RuntimeError(f"{path} returned {resp.status_code}: {resp.text[:300]}")
        got = len(resp.json().get("entry") or [])
        if got < expect:
            raise RuntimeError(f"{path} returned {got} entries, expected at least {expect}")
        return ms

    return call


def paired_p95_interval(on_ms: list[float], off_ms: list[float], seed: int, rounds: int = 1000) -> tuple[float, float]:
    """The 5th and 95th percentiles of p95(on) / p95(off) − 1 over paired bootstrap resamples.

    Samples are resampled by index, keeping each on call with the off call made next to it, so a
    load spike stays on both sides of a resample as it was in the run. The width says how much of
    a single run's figure is noise: a goal "met" inside a wide interval is not shown to be met.
    """
    rng = random.Random(seed)
    n = len(on_ms)
    ratios = []
    for _ in range(rounds):
        picks = [rng.randrange(n) for _ in range(n)]
        ratios.append(percentile([on_ms[i] for i in picks], 0.95) / percentile([off_ms[i] for i in picks], 0.95) - 1)
    return percentile(ratios, 0.05), percentile(ratios, 0.95)


def run_backend(backend: str, others: int, samples: int, seed: int, postgres_url: str) -> Result:
    """Both servers on one database; per request, on and off calls alternate one by one (the first
    of each pair alternating too), so a load spike falls on both sides alike. Each server's CPU
    (user + system, all its threads: the on side's audit writer included) is read over the timed
    calls, after a pause longer than the audit writer's batching delay, the same pause both sides."""
    result = Result(backend)
    result.notes.append(f"load average at start {_loadavg()}")
    with database(backend, postgres_url) as (url, tmp):
        data_dir = tmp / "data"
        person, _ = prepare(url, data_dir, others, seed)
        with (
            gateway_processes(url, data_dir, auth=True) as (on_ep,),
            gateway_processes(url, data_dir, auth=False) as (off_ep,),
        ):
            headers = {"Authorization": f"Bearer {client_token(on_ep.base)}"}
            with (
                httpx.Client(base_url=on_ep.fhir, headers=headers, timeout=60) as on_client,
                httpx.Client(base_url=off_ep.fhir, timeout=60) as off_client,
            ):
                for label, path, params, expect in requests_for(person):
                    on_call = caller(on_client, path, params, expect)
                    off_call = caller(off_client, path, params, expect)
                    for _ in range(20):  # warm-up
                        on_call(), off_call()
                    time.sleep(SETTLE_S)  # the warm-up's audit batch written before the clocks start
                    log(f"{backend}: {samples} × {label}, on and off alternately")
                    cpu0 = cpu_seconds(on_ep.pid), cpu_seconds(off_ep.pid)
                    on_ms: list[float] = []
                    off_ms: list[float] = []
                    for i in range(samples):
                        first, second = (on_call, off_call) if i % 2 == 0 else (off_call, on_call)
                        a, b = first(), second()
                        on_ms.append(a if first is on_call else b)
                        off_ms.append(b if first is on_call else a)
                    time.sleep(SETTLE_S)  # the last audit batch is part of the on side's work
                    on_cpu = (cpu_seconds(on_ep.pid) - cpu0[0]) / samples * 1000
                    off_cpu = (cpu_seconds(off_ep.pid) - cpu0[1]) / samples * 1000
                    on50, off50 = percentile(on_ms, 0.5), percentile(off_ms, 0.5)
                    on95, off95 = percentile(on_ms, 0.95), percentile(off_ms, 0.95)
                    added = on95 / off95 - 1
                    low, high = paired_p95_interval(on_ms, off_ms, seed)
                    result.add(
                        label,
                        f"on p50 {on50:.1f} / p95 {on95:.1f} ms · off p50 {off50:.1f} / p95 {off95:.1f} ms · "
                        f"**{added:+.0%}** at p95 (90 % interval {low:+.0%} … {high:+.0%}) · p50 {on50 - off50:+.1f} ms"
                        f" · server CPU per request on {on_cpu:.2f} / off {off_cpu:.2f} ms",
                        f"≤ +{GOAL_ADDED:.0%} at p95",
                        added <= GOAL_ADDED,
                    )
    result.notes.append(f"load average at end {_loadavg()}")
    return result


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run_in_process(backend: str, others: int, rounds: int, seed: int, postgres_url: str) -> Result:
    """CPU per request's work, consent on vs off, in this process (see the module docstring)."""

    from sqlalchemy import event

    from bench.mllp_ingest import bench_settings
    from gateway.app import build_services
    from gateway.audit.storage import store_audit_events
    from gateway.audit.writer import ListAuditSink
    from gateway.auth.clients import client_enabled
    from gateway.auth.context import AccessContext
    from gateway.consent.decision import Decision, FilterResult
    from gateway.fhir.access import ConsentGuard
    from gateway.fhir.operations.patient_everything import parse_everything, run_patient_everything
    from gateway.fhir.repository import ClientCheck, Repository
    from gateway.fhir.search.guarded import search_as
    from gateway.fhir.search.parse import parse_search

    result = Result(backend)
    with database(backend, postgres_url) as (url, tmp):
        data_dir = tmp / "data"
        person, _ = prepare(url, data_dir, others, seed)
        services = build_services(bench_settings(url, data_dir, auth=False))
        store = services.store
        statements = [0]
        event.listen(store.engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))
        sink = ListAuditSink()
        caller = AccessContext(
            client_id="case-app",
            organization="Organization/case-mgmt",
            role="case-manager",
            scopes=frozenset({"system/*.rs"}),
        )
        guard = ConsentGuard(store, audit=sink)
        anonymous = AccessContext(client_id="anonymous", scopes=frozenset({"system/*.cruds"}))

        def on() -> Repository:  # as a request makes it: the client's registration checked in its transaction
            return Repository(store, caller, guard, client=ClientCheck(CLIENT_ID, client_enabled))

        def off() -> Repository:
            return Repository(store, anonymous)

        everything = parse_everything([("_count", "1000"), ("_type", RECORD_TYPES)], services)

        def search(rtype: str, items: list[tuple[str, str]]) -> Callable[[Callable[[], Repository]], object]:
            q = parse_search(store.registry, rtype, items, strict=False, default_count=50, max_count=1000).query

            def call(make: Callable[[], Repository]) -> object:
                repo = make()
                with repo.reader() as uow:
                    return search_as(uow, repo, q, "bench")

            return call

        work: list[tuple[str, Callable[[Callable[[], Repository]], object], int]] = [
            ("search Observation?patient= (_count=50)", search("Observation", [("patient", person.hospital_id)]), 200),
            (
                "search Patient?identifier= (NHS number)",
                search("Patient", [("identifier", f"{NHS_NUMBER_SYSTEM}|{person.nhs}")]),
                300,
            ),
            (
                "Patient/$everything (_type=the record's types)",
                lambda make: run_patient_everything(make(), person.hospital_id, everything, "http://bench/fhir"),
                10,
            ),
        ]
        for label, call, n in work:
            cpu: dict[str, float] = {}
            per_call: dict[str, float] = {}
            for side, make in (("on", on), ("off", off)):
                for _ in range(3):
                    call(make)  # warm: classes and decisions remembered, statements compiled
                best = float("inf")
                for _ in range(rounds):
                    before = statements[0]
                    t0 = time.thread_time()
                    for _ in range(n):
                        call(make)
                    best = min(best, (time.thread_time() - t0) / n)
                    per_call[side] = (statements[0] - before) / n
                    sink.events.clear()
                cpu[side] = best * 1000
            log(f"{backend}: {label}: on {cpu['on']:.3f} / off {cpu['off']:.3f} ms CPU")
            result.add(
                label + ", CPU per request (in-process)",
                f"on {cpu['on']:.2f} ms ({per_call['on']:.0f} statements) · off {cpu['off']:.2f} ms "
                f"({per_call['off']:.0f}) · **+{cpu['on'] - cpu['off']:.2f} ms** ({cpu['on'] / cpu['off'] - 1:+.0%})",
            )
        # The background writer's share: AuditEvents made as the guard makes them (its own ids), stored
        # in batches of 40 on top of AUDIT_BACKLOG events already stored, as in a gateway that has run a while.
        decision = Decision(True, ("agreement",), policy_ids=("Basic/isa-record",), patients=(person.hospital_id,))
        page = FilterResult(permitted=[], decisions=[decision] * 50)
        made = ListAuditSink()
        maker = ConsentGuard(store, audit=made)

        def batch() -> list[dict[str, object]]:
            made.events.clear()
            for _ in range(40):
                maker._audit(caller, [], page, "search", "q")  # as a search page is audited
            return list(made.events)

        for _ in range(AUDIT_BACKLOG // 40):
            store_audit_events(store, batch())
        best = float("inf")
        for _ in range(rounds):
            events = batch()
            t0 = time.thread_time()
            store_audit_events(store, events)
            best = min(best, (time.thread_time() - t0) / len(events))
        result.add(f"store one AuditEvent (batch of 40, {AUDIT_BACKLOG:,} stored before), CPU", f"{best * 1e6:.0f} µs")
        store.engine.dispose()
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench consent-overhead",
        description="Search and $everything p95 with consent enforcement on vs off, same data, one run.",
    )
    parser.add_argument("--others", type=int, help="other people stored (default 100; quick 10)")
    parser.add_argument("--samples", type=int, help="timed calls per request and mode (default 500; quick 200)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--in-process", action="store_true", help="CPU per request's work, in this process")
    add_common(parser)
    args = parser.parse_args(argv)
    others = args.others if args.others is not None else (10 if args.quick else 100)
    samples = args.samples or (200 if args.quick else 500)
    if args.in_process:
        rounds = 5 if args.quick else 9
        results = [run_in_process(b, others, rounds, args.seed, args.postgres_url) for b in backends(args.backend)]
        command = ("python -m bench consent-overhead " + " ".join(argv)).strip()
        footer = ["CPU: this thread's time.thread_time per request's work in its read transaction, best round."]
        print(render(f"Consent overhead bench (in-process) — `{command}`", results, footer))
        return 0
    results = [run_backend(b, others, samples, args.seed, args.postgres_url) for b in backends(args.backend)]
    command = ("python -m bench consent-overhead " + " ".join(argv)).strip()
    footer = [
        "Two `care-gateway serve` children on one database: consent on (GATEWAY_AUTH_REQUIRED=true, real "
        "client-credentials token of the case-management organisation, agreement over all three sources) and off "
        "(open mode). One client, requests alternating on/off, one at a time (which goes first alternates too). "
        "90 % interval: paired bootstrap of the p95 ratio (each on call kept with its off neighbour). Server CPU: "
        "each child's user + system time over the timed calls (all threads, the audit writer's included) per call.",
    ]
    print(render(f"Consent overhead bench — `{command}`", results, footer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
