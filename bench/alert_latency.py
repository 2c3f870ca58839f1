"""Virtual-ward alert latency bench: presentation accepted -> the case manager's webhook notified.

Latency per alert = the moment the local webhook receiver gets the notification for a person,
minus the moment the presentation that caused it was accepted: the MLLP ACK received for an ADT
A04, or the 201 received for a REST `POST /fhir/Encounter`. Both clocks are in this process.

Set-up, on a fresh database, before the gateway starts:

- N Patients (default 100,000; synthetic, NHS numbers from the 999 range, valid Modulus 11),
  bulk-loaded through `store.writer()` in transactions of 1,000 (not over HTTP);
- a ward of W case-managed people (default 5,000): an active virtual-ward EpisodeOfCare each,
  spread over 20 care managers (Practitioner + CareTeam each);
- the outbox rows of that bulk load are marked dispatched (a long-running gateway would have
  relayed them long ago), so the run does not start with a 100k-event backlog;
- SMART clients (ClientRepository) and a sharing agreement (`build_agreement`) between the
  case-management organisation and the trust, as the virtual-ward e2e test sets them up.

Then the gateway runs as `care-gateway serve` (auth on): the embedded default (SQLite, no Redis,
one process), and PostgreSQL + Redis Streams with two gateway processes. One rest-hook
Subscription per care manager (topic case-managed-person-presented, filter `care-manager=`,
full-resource payload) points at a webhook receiver in this process. Presentations are sent
open-loop at a fixed rate (default 100/s), half as ADT A04 over MLLP and half as REST Encounters
(class EMER; `--mllp-share` changes the mix, 0 = REST only), alternating between the gateway
processes; a share of them (default 50 %) are people on the ward, each presenting once; the rest
are other patients (load, no alert).

    .venv/bin/python -m bench alert-latency            # 100k patients, ward 5k, 100/s for 60 s
    .venv/bin/python -m bench alert-latency --quick    # 5k patients, ward 500, 100/s for 15 s
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import update  # noqa: E402

from bench.fhir_core import NhsNumbers, Result, free_port, percentile  # noqa: E402
from bench.mllp_ingest import (  # noqa: E402
    REDIS_BENCH_URL,
    Endpoint,
    ack_accepted,
    adt_message,
    bench_settings,
    cpu_seconds,
    database,
    flush_bench_redis,
    gateway_processes,
    log,
    render,
    synthetic_patient,
)
from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA, EXT_PAYLOAD_CONTENT  # noqa: E402
from gateway.codes import EPISODE_TYPE_SYSTEM, TOPIC_PRESENTED, VIRTUAL_WARD  # noqa: E402
from gateway.intake.mllp import MllpConnection  # noqa: E402

GOAL_P50_MS, GOAL_P99_MS, GOAL_P999_MS = 50.0, 250.0, 1_000.0
CASE_ORG = "Organization/case-mgmt"
TRUST_ORG = "Organization/trust-rxx"
CLIENTS = {
    # client id -> (organisation, role, scopes)
    "case-app": (CASE_ORG, "case-manager", "system/*.rs system/Subscription.cruds"),
    "hospital": (TRUST_ORG, "clinician", "system/*.cruds"),
}
MLLP_CONNECTIONS = 16  # per gateway process
DRAIN_S = 120.0  # after each phase, wait this long at most for outstanding notifications


def secret(cid: str) -> str:
    return f"secret-{cid}-0123456789"


@dataclass
class Population:
    ward: list[tuple[str, str]] = field(default_factory=list)  # (patient id, nhs) on the ward
    others: list[tuple[str, str]] = field(default_factory=list)
    managers: list[str] = field(default_factory=list)  # Practitioner ids


# -- set-up in this process ------------------------------------------------------------------------


def load_population(url: str, data_dir: Path, patients: int, ward: int, managers: int, seed: int) -> Population:
    from gateway.app import build_services
    from gateway.auth import ClientRepository
    from gateway.consent.agreements import build_agreement
    from gateway.store.schema import outbox

    services = build_services(bench_settings(url, data_dir, auth=True))
    store = services.store
    rng = random.Random(seed)
    numbers = NhsNumbers(seed)
    pop = Population()
    clients = ClientRepository(store.engine)
    for cid, (org, role, scopes) in CLIENTS.items():
        clients.add(client_id=cid, name=cid, organization=org, role=role, scopes=scopes.split(), secret=secret(cid))
    teams: list[str] = []
    with store.writer() as uow:
        uow.update(build_agreement(id="isa-ward", recipients=[CASE_ORG, TRUST_ORG], purposes=["TREAT"]))
        for m in range(managers):
            prac = uow.create(
                {"resourceType": "Practitioner", "name": [{"family": f"Manager{m:02d}", "given": ["Bench"]}]}
            )
            pop.managers.append(prac.id)
            team = uow.create({"resourceType": "CareTeam", "status": "active", "name": f"ward team {m:02d}"})
            teams.append(team.id)
    t0 = time.perf_counter()
    for start in range(0, patients, 1_000):
        with store.writer() as uow:
            for i in range(start, min(patients, start + 1_000)):
                nhs = numbers.next()
                pid = uow.create(synthetic_patient(nhs, rng)).id
                if i < ward:
                    m = i % managers
                    uow.create(
                        {
                            "resourceType": "EpisodeOfCare",
                            "status": "active",
                            "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
                            "patient": {"reference": f"Patient/{pid}"},
                            "managingOrganization": {"reference": CASE_ORG},
                            "period": {"start": "2026-11-01"},
                            "careManager": {"reference": f"Practitioner/{pop.managers[m]}"},
                            "team": [{"reference": f"CareTeam/{teams[m]}"}],
                        }
                    )
                    pop.ward.append((pid, nhs))
                else:
                    pop.others.append((pid, nhs))
    log(f"loaded {patients:,} Patients ({ward:,} on the ward) in {time.perf_counter() - t0:.0f} s")
    with store.engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.dispatched_at.is_(None)).values(dispatched_at=outbox.c.created_at))
    if store.engine.dialect.name == "postgresql":
        # VACUUM as well: the mark above leaves a dead entry per row in the outbox's pending index,
        # which every relay claim then walked (~430 buffers a claim); autovacuum, off on this server,
        # would have cleaned them up long before a deployment's first presentation. Then a
        # CHECKPOINT: the set-up's ~1 GB of WAL otherwise set one off somewhere in the load phase.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
            conn.exec_driver_sql("CHECKPOINT")
    store.engine.dispose()
    return pop


# -- the webhook receiver and the load -------------------------------------------------------------


@dataclass
class Tally:
    """Correlates notifications with presentations by the person's Patient id (first in, first out)."""

    phase: str = ""
    sent: dict[str, deque[tuple[float, str, str]]] = field(default_factory=dict)  # pid -> (accepted, path, phase)
    latency: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (phase, path) -> ms
    accept: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (phase, path) -> send->ACK/201 ms
    early: dict[str, deque[float]] = field(default_factory=dict)  # notified before the ACK/201 came back
    # where the time goes, per phase: alert stored -> notification built -> webhook (wall clocks)
    stages: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    rejected: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # exception name -> count
    cpu: dict[str, float] = field(default_factory=dict)  # phase -> gateway CPU s (all processes), load + drain
    events_received: int = 0  # event numbers received, repeats included (at-least-once may repeat)
    events_unique: set[tuple[str, int]] = field(default_factory=set)  # (subscription, event number)

    def pending(self) -> int:
        return sum(len(q) for q in self.sent.values())

    def notified(self, pid: str, arrived: float) -> None:
        queue = self.sent.get(pid)
        if queue:
            accepted, path, phase = queue.popleft()
            self.latency.setdefault((phase, path), []).append((arrived - accepted) * 1000)
        else:
            self.early.setdefault(pid, deque()).append(arrived)

    def accepted(self, pid: str, at: float, path: str) -> None:
        early = self.early.get(pid)
        if early:
            self.latency.setdefault((self.phase, path), []).append((early.popleft() - at) * 1000)
        else:
            self.sent.setdefault(pid, deque()).append((at, path, self.phase))


def _epoch(instant: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(instant).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _tail(reference: str) -> str:
    return reference.rstrip("/").rsplit("/", 1)[-1]


def webhook_app(tally: Tally) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        arrived, wall = time.perf_counter(), time.time()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        bundle = orjson.loads(body)
        entries = bundle.get("entry") or []
        status = (entries[0].get("resource") or {}) if entries else {}
        params = status.get("parameter") or []
        # by id: each gateway process names the subscription under its own base URL
        sub = next((_tail(str(p["valueReference"].get("reference"))) for p in params if "valueReference" in p), "")
        for p in params:
            if p.get("name") == "notification-event":
                for part in p.get("part") or []:
                    if part.get("name") == "event-number":
                        tally.events_received += 1
                        tally.events_unique.add((sub, int(part.get("valueString") or 0)))
        for entry in entries[1:]:
            res = entry.get("resource") or {}
            if res.get("resourceType") == "Communication":
                tally.notified(_tail((res.get("subject") or {}).get("reference", "")), arrived)
                stored = _epoch((res.get("meta") or {}).get("lastUpdated"))
                built = _epoch(bundle.get("timestamp"))
                if stored is not None and built is not None:
                    tally.stages.setdefault(tally.phase, []).append(((built - stored) * 1000, (wall - built) * 1000))

    return app


async def token(client: httpx.AsyncClient, base: str, cid: str) -> str:
    resp = await client.post(f"{base}/auth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret(cid)))
    resp.raise_for_status()
    return str(resp.json()["access_token"])


async def subscribe(client: httpx.AsyncClient, ep: Endpoint, managers: list[str], hook: str) -> None:
    headers = {"Authorization": f"Bearer {await token(client, ep.base, 'case-app')}"}
    ids = []
    for manager in managers:
        sub = {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "virtual ward presentations",
            "criteria": TOPIC_PRESENTED,
            "_criteria": {
                "extension": [{"url": EXT_FILTER_CRITERIA, "valueString": f"Communication?care-manager={manager}"}]
            },
            "channel": {
                "type": "rest-hook",
                "endpoint": hook,
                "payload": "application/fhir+json",
                "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": "full-resource"}]},
            },
        }
        resp = await client.post(f"{ep.fhir}/Subscription", json=sub, headers=headers)
        if resp.status_code != 201:
            raise RuntimeError(f"Subscription create returned {resp.status_code}: {resp.text[:300]}")
        ids.append(resp.json()["id"])
    deadline = time.monotonic() + 30
    for sid in ids:
        while (await client.get(f"{ep.fhir}/Subscription/{sid}", headers=headers)).json().get("status") != "active":
            if time.monotonic() > deadline:
                raise RuntimeError("Subscriptions did not become active within 30 s")
            await asyncio.sleep(0.1)


def encounter(pid: str, visit: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "identifier": [{"system": "https://bench.invalid/visit", "value": visit}],
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceProvider": {"reference": TRUST_ORG, "display": "Northtown Hospitals"},
        "period": {"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }


@dataclass(frozen=True)
class Plan:
    patients: int
    ward: int
    managers: int
    rates: tuple[float, ...]
    duration: float
    ward_share: float
    seed: int
    mllp_share: float = 0.5


async def drive(endpoints: list[Endpoint], pop: Population, plan: Plan, tally: Tally, hook_port: int) -> list[float]:
    """Run one load phase per rate (draining between them); returns the achieved rates."""
    server = uvicorn.Server(
        uvicorn.Config(webhook_app(tally), host="127.0.0.1", port=hook_port, log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    rng = random.Random(plan.seed)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    achieved: list[float] = []
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        hook = f"http://127.0.0.1:{hook_port}/hook"
        await subscribe(client, endpoints[0], [f"Practitioner/{m}" for m in pop.managers], hook)
        tokens = [await token(client, ep.base, "hospital") for ep in endpoints]
        pools: list[asyncio.Queue[MllpConnection]] = []
        for ep in endpoints:
            pool: asyncio.Queue[MllpConnection] = asyncio.Queue()
            for _ in range(MLLP_CONNECTIONS):
                conn = MllpConnection("127.0.0.1", ep.mllp_port, timeout=120)
                await conn.__aenter__()
                pool.put_nowait(conn)
            pools.append(pool)
        ward = list(pop.ward)
        rng.shuffle(ward)
        ward_iter = itertools.cycle(ward)
        counter = itertools.count()

        async def present(i: int, on_ward: bool, timed: bool) -> None:
            try:
                await present_one(i, on_ward, timed)
            except (httpx.HTTPError, OSError, TimeoutError) as exc:  # overload: count it, keep the load going
                tally.rejected += 1
                tally.failures[type(exc).__name__] = tally.failures.get(type(exc).__name__, 0) + 1

        async def present_one(i: int, on_ward: bool, timed: bool) -> None:
            pid, nhs = next(ward_iter) if on_ward else rng.choice(pop.others)
            proc = i % len(endpoints)
            k = i // len(endpoints)  # every process gets the same mix
            path = "MLLP" if math.floor((k + 1) * plan.mllp_share) > math.floor(k * plan.mllp_share) else "REST"
            visit = f"BV{next(counter):08d}"
            t0 = time.perf_counter()
            if path == "MLLP":
                msg = adt_message("A04", f"BENCH{visit}", nhs, f"M{visit}", visit, rng=rng)
                conn = await pools[proc].get()
                t0 = time.perf_counter()
                try:
                    ack = await conn.send(msg)
                finally:
                    pools[proc].put_nowait(conn)
                ok = ack_accepted(ack)
            else:
                resp = await client.post(
                    f"{endpoints[proc].fhir}/Encounter",
                    json=encounter(pid, visit),
                    headers={"Authorization": f"Bearer {tokens[proc]}"},
                )
                ok = resp.status_code == 201
            accepted = time.perf_counter()
            if not ok:
                tally.rejected += 1
                return
            if timed:
                tally.accept.setdefault((tally.phase, path), []).append((accepted - t0) * 1000)
                if on_ward:
                    tally.accepted(pid, accepted, path)

        # warm-up: a few non-ward presentations down both paths on every process
        await asyncio.gather(*(present(i, False, False) for i in range(4 * len(endpoints))))
        for rate in plan.rates:
            tally.phase = f"{rate:g}/s"
            log(f"  phase {tally.phase} for {plan.duration:g} s")
            total = int(rate * plan.duration)
            tasks = []
            cpu0 = sum(cpu_seconds(ep.pid) for ep in endpoints)
            t0 = time.perf_counter()
            for i in range(total):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(present(i, rng.random() < plan.ward_share, True)))
            send_s = time.perf_counter() - t0
            await asyncio.gather(*tasks)
            achieved.append(total / send_s)
            deadline = time.monotonic() + DRAIN_S
            while tally.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            tally.cpu[tally.phase] = sum(cpu_seconds(ep.pid) for ep in endpoints) - cpu0
            log(f"  phase {tally.phase}: {tally.pending()} ward presentations still without a notification")
            tally.sent.clear()
            await asyncio.sleep(1.0)
        for pool in pools:
            while not pool.empty():
                await pool.get_nowait().close()
    server.should_exit = True
    await serving
    return achieved


def _figure(samples: list[float]) -> str:
    p50, p99, p999 = (percentile(samples, q) for q in (0.50, 0.99, 0.999))
    return f"p50 {p50:,.0f} ms · p99 {p99:,.0f} ms · p99.9 {p999:,.0f} ms (n={len(samples):,})"


def _logged_counts(url: str) -> tuple[int, int]:
    """Alert Communications stored and topic events numbered, all phases (warm-up included)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            alerts = conn.execute(text("SELECT count(*) FROM resource WHERE res_type = 'Communication'")).scalar_one()
            events = conn.execute(text("SELECT count(*) FROM subscription_event")).scalar_one()
    finally:
        engine.dispose()
    return int(alerts), int(events)


def run_config(label: str, backend: str, processes: int, redis: bool, plan: Plan, postgres_url: str) -> Result:
    result = Result(label)
    with database(backend, postgres_url) as (url, tmp):
        data_dir = tmp / "data"
        pop = load_population(url, data_dir, plan.patients, plan.ward, plan.managers, plan.seed)
        redis_url = REDIS_BENCH_URL if redis else None
        if redis_url:
            flush_bench_redis(redis_url)
        tally = Tally()
        with gateway_processes(url, data_dir, count=processes, redis_url=redis_url) as endpoints:
            log(f"{label}: rates {', '.join(f'{r:g}/s' for r in plan.rates)}")
            achieved = asyncio.run(drive(endpoints, pop, plan, tally, free_port()))
        logged = _logged_counts(url)
        if redis_url:
            flush_bench_redis(redis_url)
    goal = f"p50 ≤ {GOAL_P50_MS:g} · p99 ≤ {GOAL_P99_MS:g} · p99.9 ≤ {GOAL_P999_MS:g} ms"
    for rate, got in zip(plan.rates, achieved, strict=True):
        phase = f"{rate:g}/s"
        by_path = {path: tally.latency.get((phase, path), []) for path in ("MLLP", "REST")}
        both = by_path["MLLP"] + by_path["REST"]
        if not both:
            result.add(f"{phase}: alert latency", "no notifications", goal, False)
        else:
            p50, p99, p999 = (percentile(both, q) for q in (0.50, 0.99, 0.999))
            met = p50 <= GOAL_P50_MS and p99 <= GOAL_P99_MS and p999 <= GOAL_P999_MS
            result.add(f"{phase}: alert latency, accepted → webhook (both paths)", _figure(both), goal, met)
        for path, name in (("MLLP", "ADT A04 MLLP ACK"), ("REST", "REST Encounter 201")):
            if by_path[path]:
                result.add(f"{phase}: … {name} → webhook", _figure(by_path[path]))
        stages = tally.stages.get(phase, [])
        if stages:
            result.add(f"{phase}: … alert stored → notification built", _figure([a for a, _ in stages]))
            result.add(f"{phase}: … notification built → webhook", _figure([b for _, b in stages]))
        accept = tally.accept.get((phase, "MLLP"), []) + tally.accept.get((phase, "REST"), [])
        if accept:
            result.add(f"{phase}: send → accepted (ACK/201), all presentations", _figure(accept))
        result.add(f"{phase}: presentations sent", f"{got:,.1f}/s for {plan.duration:g} s")
        if tally.cpu.get(phase):
            # the machine is shared: the gateways' own CPU per presentation is the steadier figure
            per = tally.cpu[phase] / (rate * plan.duration) * 1000
            result.add(f"{phase}: gateway CPU per presentation (all processes, load and drain)", f"{per:.2f} ms")
    if tally.events_received:
        repeats = tally.events_received - len(tally.events_unique)
        result.notes.append(
            f"webhook: {tally.events_received:,} event notifications received, {len(tally.events_unique):,} distinct "
            f"(subscription, event number), {repeats:,} repeats; the gateway stored {logged[0]:,} alert "
            f"Communications and numbered {logged[1]:,} topic events"
        )
    if tally.rejected:
        failed = ", ".join(f"{n} × {name}" for name, n in tally.failures.items())
        result.notes.append(
            f"{tally.rejected} presentations were not accepted (no ACK AA/CA, no 201, or {failed or 'no errors'})"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench alert-latency",
        description="Presentation accepted (MLLP ACK / REST 201) -> webhook notified: p50/p99/p99.9.",
    )
    parser.add_argument("--patients", type=int, help="Patients stored (default 100,000; quick 5,000)")
    parser.add_argument("--ward", type=int, help="case-managed people (default 5,000; quick 500)")
    parser.add_argument("--managers", type=int, default=20, help="care managers (one Subscription each)")
    parser.add_argument(
        "--rates", default="20,100", help="presentations per second, one load phase each (default 20,100)"
    )
    parser.add_argument("--duration", type=float, help="seconds of load (default 60; quick 15)")
    parser.add_argument("--ward-share", type=float, default=0.5, help="share of presentations by ward people")
    parser.add_argument(
        "--mllp-share",
        type=float,
        default=0.5,
        help="share of presentations sent as ADT A04 over MLLP, the rest REST (default 0.5; 0 = REST only)",
    )
    parser.add_argument("--quick", action="store_true", help="small population, 15 s of load")
    parser.add_argument(
        "--config", choices=("embedded", "postgres-redis", "both"), default="both", help="which deployment(s)"
    )
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    plan = Plan(
        patients=args.patients or (5_000 if args.quick else 100_000),
        ward=args.ward or (500 if args.quick else 5_000),
        managers=args.managers,
        rates=tuple(float(r) for r in args.rates.split(",")),
        duration=args.duration or (15.0 if args.quick else 60.0),
        ward_share=args.ward_share,
        seed=args.seed,
        mllp_share=args.mllp_share,
    )
    results = []
    configs = [
        ("SQLite, 1 process, no Redis", "SQLite", 1, False),
        ("PostgreSQL + Redis, 2 processes", "PostgreSQL", 2, True),
    ]
    for label, backend, processes, redis in configs:
        if args.config not in ("both", "embedded" if backend == "SQLite" else "postgres-redis"):
            continue
        try:
            results.append(run_config(label, backend, processes, redis, plan, args.postgres_url))
        except Exception as exc:  # keep the other configuration's figures
            log(f"{label}: failed: {exc!r}")
            failed = Result(label)
            failed.add("run", f"failed: {type(exc).__name__}")
            results.append(failed)
    command = ("python -m bench alert-latency " + " ".join(argv)).strip()
    footer = [
        f"{plan.patients:,} Patients, {plan.ward:,} on the virtual ward ({plan.managers} care managers, one "
        f"Subscription each, full-resource rest-hook to a receiver in the bench process). Each phase: "
        f"presentations open-loop at the rate shown for {plan.duration:g} s, {plan.ward_share:.0%} by ward people, "
        f"{plan.mllp_share:.0%} ADT A04 over MLLP (16 connections per process) and the rest REST Encounter (class EMER); "
        "`care-gateway serve`, auth on.",
    ]
    print(render(f"Alert latency bench — `{command}`", results, footer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
