"""FHIR server core bench: create throughput, read and token-search latency, on SQLite and PostgreSQL.

Figures come from the real stack: the gateway app (`build_services` + `create_app`) served by
uvicorn in a child process on 127.0.0.1, driven by one httpx client, so the client and the server
each have a core of this 2-core machine. Creates are timed over HTTP (one Patient per POST, and
100-entry transaction Bundles). The N stored Patients that reads and searches run against are
bulk-loaded through `store.writer()` in batches of 1,000, not over HTTP, to keep the run short.
Reads and searches are also timed in-process against the store (no HTTP), which shows how much
of the latency is the database and how much is the web stack.

Synthetic Patients only: NHS numbers from the 999 range with valid Modulus 11 check digits.
PostgreSQL runs in a fresh schema that the bench creates and drops.

    .venv/bin/python -m bench fhir-core            # N = 100,000 (several minutes)
    .venv/bin/python -m bench fhir-core --quick    # 5,000 stored, fewer samples (< 1 minute)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, with_check_digit  # noqa: E402
from gateway.settings import Settings  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FHIR_JSON = "application/fhir+json"

# Goals from issue 2: (metric key, backend or None for both, comparison, target).
GOAL_TX_PER_S = 3_000.0
GOAL_READ_P95_MS = 5.0
GOAL_SEARCH_P95_MS = 10.0

_FAMILIES = ("Testperson", "Benchmark", "Synthetic", "Example", "Sample", "Dummy", "Fixture", "Mockley")
_GIVENS = ("Alex", "Sam", "Jo", "Chris", "Pat", "Robin", "Kim", "Lee", "Max", "Ash")


# -- synthetic data ------------------------------------------------------------------------------


class NhsNumbers:
    """Unique valid NHS numbers from the 999 range, in a shuffled but reproducible order."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._used: set[str] = set()

    def next(self) -> str:
        while True:
            number = with_check_digit(f"999{self._rng.randrange(1_000_000):06d}")
            if number and number not in self._used and len(set(number)) > 1:
                self._used.add(number)
                return number


def patient(nhs: str, rng: random.Random) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "active": True,
        "name": [{"use": "official", "family": rng.choice(_FAMILIES), "given": [rng.choice(_GIVENS)]}],
        "gender": rng.choice(("female", "male", "other", "unknown")),
        "birthDate": f"{rng.randint(1925, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "address": [{"use": "home", "postalCode": f"ZZ{rng.randint(1, 99)} {rng.randint(1, 9)}ZZ"}],
    }


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": res,
                "request": {"method": "POST", "url": res["resourceType"]},
            }
            for res in resources
        ],
    }


# -- measurement ---------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile: the value at or below which a fraction `q` of samples fall."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class Row:
    metric: str
    value: str
    goal: str = ""
    met: bool | None = None


@dataclass
class Result:
    backend: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, value: str, goal: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(metric, value, goal, met))


def timed(fn: Callable[[], Any], samples: int) -> list[float]:
    """Milliseconds per call of `fn`, `samples` times."""
    out: list[float] = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def latency_row(result: Result, label: str, ms: list[float], goal_p95: float | None) -> None:
    p50, p95 = percentile(ms, 0.50), percentile(ms, 0.95)
    if goal_p95 is None:
        result.add(label, f"p50 {p50:.2f} ms · p95 {p95:.2f} ms")
    else:
        result.add(label, f"p50 {p50:.2f} ms · p95 {p95:.2f} ms", f"p95 ≤ {goal_p95:g} ms", p95 <= goal_p95)


# -- databases and the server --------------------------------------------------------------------


@contextmanager
def sqlite_database() -> Iterator[tuple[str, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-fhir-core-"))
    try:
        yield f"sqlite:///{tmp / 'bench.db'}", tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[tuple[str, Path]]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    tmp = Path(tempfile.mkdtemp(prefix="bench-fhir-core-"))
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in admin_url else "?"
        yield f"{admin_url}{sep}options=-csearch_path%3D{schema}", tmp
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_settings(database_url: str, data_dir: Path, port: int) -> Settings:
    # Request logs off (WARNING): one JSON line per request would be measured as well.
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        base_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
        paging_secret="bench-paging-secret",
        # The FHIR core alone: consent costs are measured by bench/consent_overhead.py.
        auth_required=False,
        mllp_port=0,
        ward_list_push_enabled=False,
    )


def serve(database_url: str, data_dir: str, port: int) -> None:
    """Child-process entry: the gateway app on uvicorn, as `care-gateway serve` runs it."""
    import uvicorn

    from gateway.app import build_services, create_app

    settings = bench_settings(database_url, Path(data_dir), port)
    app = create_app(settings, build_services(settings), components=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def server(database_url: str, data_dir: Path, port: int) -> Iterator[str]:
    cmd = [sys.executable, "-m", "bench.fhir_core", "--serve", database_url, str(data_dir), str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway server exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway server did not become ready within 60 s")
            time.sleep(0.2)
        yield f"{base}/fhir"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the bench -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    size: int
    singles: int
    bundles: int
    reads: int
    searches: int
    seed: int


def run_backend(backend: str, database_url: str, data_dir: Path, plan: Plan, log: Callable[[str], None]) -> Result:
    from gateway.app import build_services
    from gateway.fhir.search.parse import parse_search

    result = Result(backend)
    rng = random.Random(plan.seed)
    numbers = NhsNumbers(plan.seed)
    port = free_port()
    settings = bench_settings(database_url, data_dir, port)
    services = build_services(settings)  # migrates the fresh database
    store = services.store
    stored: list[tuple[str, str]] = []  # (id, nhs number)

    with server(database_url, data_dir, port) as fhir, httpx.Client(base_url=fhir, timeout=60) as client:
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        client.get("/metadata").raise_for_status()

        # Creates over HTTP: one Patient per POST, one client, one request at a time.
        log(f"{backend}: {plan.singles} single creates over HTTP")
        bodies = [patient(numbers.next(), rng) for _ in range(plan.singles)]
        t0 = time.perf_counter()
        for body in bodies:
            resp = client.post("/Patient", json=body, headers=headers)
            if resp.status_code != 201:
                raise RuntimeError(f"POST /Patient returned {resp.status_code}: {resp.text[:300]}")
            stored.append((resp.json()["id"], body["identifier"][0]["value"]))
        rate = plan.singles / (time.perf_counter() - t0)
        result.add(f"create, single POST (n={plan.singles:,})", f"{rate:,.0f} resources/s")

        # Creates over HTTP: 100-entry transaction Bundles.
        log(f"{backend}: {plan.bundles} transaction Bundles of 100 over HTTP")
        bundles = [transaction([patient(numbers.next(), rng) for _ in range(100)]) for _ in range(plan.bundles)]
        t0 = time.perf_counter()
        for bundle in bundles:
            resp = client.post("", json=bundle, headers=headers)
            if resp.status_code != 200:
                raise RuntimeError(f"transaction returned {resp.status_code}: {resp.text[:300]}")
        elapsed = time.perf_counter() - t0
        rate = 100 * plan.bundles / elapsed
        goal_met = rate >= GOAL_TX_PER_S if backend == "PostgreSQL" else None
        goal = f"≥ {GOAL_TX_PER_S:,.0f}/s (PostgreSQL)" if backend == "PostgreSQL" else ""
        result.add(f"create, transaction of 100 (n={100 * plan.bundles:,})", f"{rate:,.0f} resources/s", goal, goal_met)
        for bundle in bundles:
            entry = bundle["entry"]
            stored.extend(("", e["resource"]["identifier"][0]["value"]) for e in entry)

        # Bulk load to N through the store (not HTTP), in transactions of 1,000.
        have = plan.singles + 100 * plan.bundles
        todo = max(0, plan.size - have)
        log(f"{backend}: bulk-loading {todo:,} Patients through store.writer()")
        t0 = time.perf_counter()
        while todo:
            batch = min(1_000, todo)
            with store.writer() as uow:
                for _ in range(batch):
                    nhs = numbers.next()
                    stored.append((uow.create(patient(nhs, rng)).id, nhs))
            todo -= batch
        load_s = time.perf_counter() - t0
        loaded = max(0, plan.size - have)
        if loaded:
            result.add(
                f"bulk load via store.writer(), 1,000/tx (n={loaded:,})",
                f"{loaded / load_s:,.0f} resources/s",
            )
        if backend == "PostgreSQL":
            with store.engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
            result.notes.append("ANALYZE run after the bulk load (as autovacuum would).")
        total = have + loaded
        result.notes.append(f"{total:,} Patients stored when reads and searches were timed.")

        readable = [rid for rid, _ in stored if rid]
        ids = [rng.choice(readable) for _ in range(plan.reads)]
        nhs_sample = [rng.choice(stored)[1] for _ in range(plan.searches)]

        def http_read(rid: str) -> None:
            resp = client.get(f"/Patient/{rid}", headers={"Accept": FHIR_JSON})
            if resp.status_code != 200:
                raise RuntimeError(f"read returned {resp.status_code}")

        def http_search(nhs: str) -> None:
            resp = client.get("/Patient", params={"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}"})
            if resp.status_code != 200 or resp.json().get("total") != 1:
                raise RuntimeError(f"search returned {resp.status_code}: {resp.text[:200]}")

        log(f"{backend}: {plan.reads} reads, {plan.searches} searches over HTTP and in-process")
        for rid in ids[:50]:  # warm-up: connections, caches
            http_read(rid)
        for nhs in nhs_sample[:50]:
            http_search(nhs)
        it = iter(ids)
        latency_row(result, "read over HTTP", timed(lambda: http_read(next(it)), len(ids)), GOAL_READ_P95_MS)
        it = iter(nhs_sample)
        latency_row(
            result,
            "token search over HTTP (identifier=system\\|value)",
            timed(lambda: http_search(next(it)), len(nhs_sample)),
            GOAL_SEARCH_P95_MS,
        )

    # The same reads and searches in-process against the store: the database share of the time.
    def store_read(rid: str) -> None:
        with store.reader() as uow:
            uow.read("Patient", rid)

    def store_search(nhs: str) -> None:
        items = [("identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}")]
        parsed = parse_search(store.registry, "Patient", items, strict=True, default_count=50, max_count=1000)
        with store.reader() as uow:
            page = uow.search(parsed.query)
        if page.total != 1:
            raise RuntimeError(f"store search found {page.total}")

    it = iter(ids)
    latency_row(result, "read in-process (store.reader().read)", timed(lambda: store_read(next(it)), len(ids)), None)
    it = iter(nhs_sample)
    latency_row(
        result,
        "token search in-process (parse_search + search)",
        timed(lambda: store_search(next(it)), len(nhs_sample)),
        None,
    )
    store.engine.dispose()
    return result


def render(results: list[Result], plan: Plan, command: str) -> str:
    lines = [
        f"FHIR core bench — {plan.size:,} Patients stored for reads/searches; `{command}`",
        "",
        "| back end | measure | figure | goal | met |",
        "|---|---|---|---|---|",
    ]
    for res in results:
        for row in res.rows:
            met = "" if row.met is None else ("yes" if row.met else "**no**")
            lines.append(f"| {res.backend} | {row.metric} | {row.value} | {row.goal} | {met} |")
    lines.append("")
    lines.append(
        "HTTP figures: uvicorn (1 process) + one sequential httpx client on 127.0.0.1, request logs off. "
        "The stored bulk beyond the HTTP creates is loaded through store.writer() in transactions of 1,000, "
        "not over HTTP."
    )
    for res in results:
        for note in res.notes:
            lines.append(f"{res.backend}: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        serve(argv[1], argv[2], int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench fhir-core",
        description=(
            "FHIR core bench: create throughput (single POSTs and 100-entry transactions) and read / "
            "token-search p50/p95 with N Patients stored, on SQLite and PostgreSQL, printed as a markdown table."
        ),
    )
    parser.add_argument("--size", type=int, default=100_000, help="Patients stored when reads/searches are timed")
    parser.add_argument("--quick", action="store_true", help="5,000 stored and fewer samples (under a minute)")
    parser.add_argument("--singles", type=int, help="single POST creates timed (default 1,000; quick 200)")
    parser.add_argument("--bundles", type=int, help="100-entry transactions timed (default 50; quick 10)")
    parser.add_argument("--samples", type=int, help="reads and searches timed each (default 2,000; quick 300)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "both"), default="both", help="which database(s) to bench"
    )
    parser.add_argument("--postgres-url", default=PG_ADMIN_URL, help="PostgreSQL to bench in a throw-away schema")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args(argv)

    quick = args.quick
    singles = args.singles if args.singles is not None else (200 if quick else 1_000)
    bundles = args.bundles if args.bundles is not None else (10 if quick else 50)
    samples = args.samples if args.samples is not None else (300 if quick else 2_000)
    size = 5_000 if quick and "--size" not in " ".join(argv) else args.size
    plan = Plan(size=size, singles=singles, bundles=bundles, reads=samples, searches=samples, seed=args.seed)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    results: list[Result] = []
    if args.backend in ("sqlite", "both"):
        with sqlite_database() as (url, tmp):
            results.append(run_backend("SQLite", url, tmp, plan, log))
    if args.backend in ("postgres", "both"):
        with postgres_database(args.postgres_url) as (url, tmp):
            results.append(run_backend("PostgreSQL", url, tmp, plan, log))
    command = "python -m bench fhir-core " + " ".join(argv)
    print(render(results, plan, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
