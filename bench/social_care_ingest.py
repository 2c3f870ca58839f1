"""Social-care (ASC CLD) extract ingest bench: rows/s and resources/s for a generated extract.

The extract is generated from the Q1 fixture (`fixtures/social_care/cld_2024_q1.csv`, 30 rows: 8
service users and 2 carers, Requests / Assessments / Services / Reviews): the fixture's rows are
repeated in blocks, each block with its own person ids and its own synthetic NHS numbers (999
range, valid Modulus 11), so every block is a new set of people with the fixture's event mix.

Two paths are timed on each back end, each on a fresh database:

- in-process: `SocialCareIntake(store, sources).ingest(data)` (what the HTTP upload runs in its
  worker thread), for the full extract (default 100,000 rows);
- HTTP upload: `POST /intake/social-care` (multipart) to `care-gateway serve` in a child process,
  for a smaller extract (default 10,000 rows), time to the 200 with the per-row report.

"resources" is the number of resource versions the store wrote (outbox rows: Patients, the event
resources, Provenance), not the rows mapped; both are printed.

    .venv/bin/python -m bench social-care-ingest            # 100,000 rows in-process, 10,000 over HTTP
    .venv/bin/python -m bench social-care-ingest --quick    # 6,000 and 3,000
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from bench.fhir_core import NhsNumbers, Result  # noqa: E402
from bench.mllp_ingest import add_common, backends, bench_settings, database, gateway_processes, log, render  # noqa: E402
from gateway.paths import FIXTURES_DIR  # noqa: E402
from gateway.store.schema import outbox  # noqa: E402

GOAL_RESOURCES_PER_S = 3_000.0
TEMPLATE = FIXTURES_DIR / "social_care" / "cld_2024_q1.csv"
_ID_COLUMNS = ("LA_Person_Unique_Identifier", "Cared_For_Person_Unique_Identifier")
_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters a postcode's inward code may use


def generate_extract(rows: int, seed: int) -> bytes:
    """`rows` CLD rows: the Q1 fixture repeated, each repeat a new set of people.

    Each repeat gives every person a new id, a new synthetic NHS number, a birth date and a postcode
    of their own (the same on all of that person's rows, as in a real return). Without that the people
    with no NHS number would be demographic twins of their namesakes in every other repeat, and the
    bench would time the review band filling up rather than an extract.
    """
    with TEMPLATE.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        template = list(reader)
    numbers = NhsNumbers(seed)
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    written, block = 0, 0
    while written < rows:
        nhs_map: dict[str, str] = {}
        people: dict[str, tuple[str, date]] = {}
        for src in template:
            if written >= rows:
                break
            row = dict(src)
            postcode, born = people.setdefault(row["LA_Person_Unique_Identifier"], _demographics(rng))
            for col in _ID_COLUMNS:
                if row.get(col):
                    row[col] = f"{row[col]}-{block:05d}"
            if row.get("NHS_Number"):
                row["NHS_Number"] = nhs_map.setdefault(row["NHS_Number"], numbers.next())
            if row.get("Postcode"):
                row["Postcode"] = postcode
            if row.get("Date_of_Birth"):
                uk = "/" in row["Date_of_Birth"]  # keep the fixture's mix of ISO and dd/mm/yyyy
                row["Date_of_Birth"] = born.strftime("%d/%m/%Y") if uk else born.isoformat()
            writer.writerow(row)
            written += 1
        block += 1
    return out.getvalue().encode()


def _demographics(rng: random.Random) -> tuple[str, date]:
    postcode = f"ZZ99 {rng.randint(1, 9)}{rng.choice(_LETTERS)}{rng.choice(_LETTERS)}"
    return postcode, date(1925, 1, 1) + timedelta(days=rng.randrange(60 * 365))


def outbox_rows(store: object) -> int:
    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())


_APP_NAME = "bench-social-care"


def _server_cpu(store: object) -> float:
    """CPU seconds used so far by the PostgreSQL server processes of this bench's connections
    (same machine: read from /proc), so the CPU cost per row can be told apart from waiting on a
    loaded machine."""
    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"), {"name": _APP_NAME}
        ).scalars()
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _pg_counters(store: object) -> dict[str, int]:
    """Cluster-wide WAL position and background-writer counters (other sessions' work included)."""
    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        wal = conn.execute(text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")).scalar_one()
        bg = conn.execute(
            text(
                "SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_clean, buffers_backend"
                " FROM pg_stat_bgwriter"
            )
        ).one()
    return {"wal": int(wal), **{k: int(v) for k, v in bg._mapping.items()}}


def _pg_sizes(store: object) -> list[tuple[str, int, int]]:
    """(table, heap bytes, index bytes) of the bench schema's tables, largest first."""
    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c"
                " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
                " ORDER BY pg_total_relation_size(c.oid) DESC"
            )
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]


def in_process(result: Result, url: str, data_dir: Path, data: bytes, rows: int, is_pg: bool) -> None:
    from gateway.app import build_services
    from gateway.intake.social_care_intake import SocialCareIntake
    from gateway.intake.sources import SourceRegistry
    from gateway.logging import configure_logging

    configure_logging("WARNING")  # the intake's summary log line would land in the table on stdout
    if is_pg:  # name the bench's connections, so their server processes' CPU can be counted
        url = f"{url}{'&' if '?' in url else '?'}application_name={_APP_NAME}"
    settings = bench_settings(url, data_dir, auth=True)
    services = build_services(settings)
    store = services.store
    intake = SocialCareIntake(store, SourceRegistry.load(base_url=settings.base_url))
    before = outbox_rows(store)
    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        if done % 10_000 < 200 or done == total:
            now = time.perf_counter()
            log(f"  {done:,}/{total:,} rows ({now - last[0]:.1f} s since last)")
            last[0] = now

    server_before = _server_cpu(store) if is_pg else 0.0
    io_before = _pg_counters(store) if is_pg else {}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    report = intake.ingest(data, filename="extract.csv", progress=progress)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    server = _server_cpu(store) - server_before if is_pg else 0.0
    io = {k: v - io_before[k] for k, v in _pg_counters(store).items()} if is_pg else {}
    written = outbox_rows(store) - before
    totals = report["totals"]
    goal = f"≥ {GOAL_RESOURCES_PER_S:,.0f}/s (PostgreSQL)" if is_pg else ""
    result.add(f"in-process SocialCareIntake.ingest, rows/s (n={rows:,})", f"{rows / seconds:,.0f} rows/s")
    result.add(
        f"in-process, resources written/s ({written:,} versions)",
        f"{written / seconds:,.0f} resources/s",
        goal,
        (written / seconds >= GOAL_RESOURCES_PER_S) if is_pg else None,
    )
    per_row = (cpu + server) / rows
    serial = f"≈ {written / rows / per_row:,.0f} resources/s at that cost, nothing overlapped"
    if is_pg:
        result.add(
            "in-process CPU per row: bench process + PostgreSQL server processes",
            f"{1e3 * cpu / rows:.2f} + {1e3 * server / rows:.2f} ms = {1e3 * per_row:.2f} ms ({serial})",
        )
    else:
        result.add("in-process CPU per row (bench process, SQLite in it)", f"{1e3 * per_row:.2f} ms ({serial})")
    if is_pg:
        sizes = _pg_sizes(store)
        heap, index = sum(s[1] for s in sizes), sum(s[2] for s in sizes)
        result.add(
            "in-process WAL per row (cluster-wide, other sessions included)",
            f"{io['wal'] / rows / 1e3:.1f} kB ({io['wal'] / 1e9:.2f} GB in all); checkpoints "
            f"{io['checkpoints_req']} requested + {io['checkpoints_timed']} timed; buffers written by "
            f"checkpointer {io['buffers_checkpoint']:,}, bgwriter {io['buffers_clean']:,}, backends {io['buffers_backend']:,}",
        )
        result.add(
            "database size after the in-process run (tables + indexes)",
            f"{heap / 1e6:,.0f} + {index / 1e6:,.0f} MB; "
            + ", ".join(f"{name} {(h + i) / 1e6:,.0f}" for name, h, i in sizes[:6]),
        )
    result.notes.append(
        f"in-process: {totals['accepted']:,} rows accepted, {totals['rejected']:,} rejected, "
        f"{totals['resources']:,} resources mapped, {written:,} resource versions written in {seconds:.1f} s."
    )
    store.engine.dispose()


def over_http(result: Result, url: str, data_dir: Path, data: bytes, rows: int, is_pg: bool) -> None:
    from gateway.app import build_services
    from gateway.auth import ClientRepository

    services = build_services(bench_settings(url, data_dir, auth=True))  # migrates; the client lives in the db
    ClientRepository(services.store.engine).add(
        client_id="council-upload",
        name="council-upload",
        organization="Organization/la-e09",
        role="social-worker",
        scopes=["system/*.cruds"],
        secret="secret-council-upload-0123456789",
    )
    before = outbox_rows(services.store)
    with gateway_processes(url, data_dir) as (ep,):
        token = httpx.post(
            f"{ep.base}/auth/token",
            data={"grant_type": "client_credentials"},
            auth=("council-upload", "secret-council-upload-0123456789"),
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        t0 = time.perf_counter()
        resp = httpx.post(
            f"{ep.base}/intake/social-care",
            files={"file": ("extract.csv", data, "text/csv")},
            headers=headers,
            timeout=600,
        )
        answered = resp.status_code
        if answered == 202:  # a large extract is a job: poll it to the end
            resp = _wait_for_job(f"{ep.base}{resp.headers['Location']}", headers)
        seconds = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"upload returned {resp.status_code}: {resp.text[:300]}")
    written = outbox_rows(services.store) - before
    how = "202 job, polled to done" if answered == 202 else "200 with the report"
    result.add(f"HTTP POST /intake/social-care, rows/s (n={rows:,}, {how})", f"{rows / seconds:,.0f} rows/s")
    result.add(
        f"HTTP upload, resources written/s ({written:,} versions)",
        f"{written / seconds:,.0f} resources/s",
        f"≥ {GOAL_RESOURCES_PER_S:,.0f}/s (PostgreSQL)" if is_pg else "",
        (written / seconds >= GOAL_RESOURCES_PER_S) if is_pg else None,
    )
    services.store.engine.dispose()


def _wait_for_job(location: str, headers: dict[str, str], timeout: float = 1800) -> httpx.Response:
    """Poll `GET /intake/jobs/<id>` until the job is done (or failed); its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.get(location, headers=headers, timeout=30)
        if resp.status_code != 200 or resp.json()["status"] in ("done", "failed"):
            if resp.status_code == 200 and resp.json()["status"] == "failed":
                raise RuntimeError(f"job failed: {resp.json().get('error')}")
            return resp
        if time.monotonic() > deadline:
            raise RuntimeError(f"job not done within {timeout:.0f} s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench social-care-ingest",
        description="Social-care CSV extract ingest: rows/s and resources/s in-process and over the HTTP upload.",
    )
    parser.add_argument("--rows", type=int, help="rows in the in-process extract (default 100,000; quick 6,000)")
    parser.add_argument("--http-rows", type=int, help="rows in the HTTP-uploaded extract (default 10,000; quick 3,000)")
    parser.add_argument("--quick", action="store_true", help="small extracts (under a minute)")
    parser.add_argument("--skip-http", action="store_true", help="time the in-process path only")
    add_common(parser)
    args = parser.parse_args(argv)
    rows = args.rows or (6_000 if args.quick else 100_000)
    http_rows = args.http_rows or (3_000 if args.quick else 10_000)
    data = generate_extract(rows, args.seed)
    http_data = generate_extract(http_rows, args.seed + 1)
    log(f"extracts: {rows:,} rows ({len(data) / 1e6:.1f} MB), {http_rows:,} rows ({len(http_data) / 1e6:.1f} MB)")
    results = []
    for backend in backends(args.backend):
        result = Result(backend)
        is_pg = backend == "PostgreSQL"
        with database(backend, args.postgres_url) as (url, tmp):
            log(f"{backend}: in-process ingest of {rows:,} rows")
            in_process(result, url, tmp / "data", data, rows, is_pg)
        if not args.skip_http:
            with database(backend, args.postgres_url) as (url, tmp):
                log(f"{backend}: HTTP upload of {http_rows:,} rows")
                over_http(result, url, tmp / "data", http_data, http_rows, is_pg)
        results.append(result)
    command = ("python -m bench social-care-ingest " + " ".join(argv)).strip()
    footer = [
        "Generated extract: the 30-row Q1 fixture repeated with new person ids and NHS numbers per repeat "
        "(10 people / 30 rows per repeat). Each path runs on a fresh database; resources = versions written "
        "(outbox rows), including Provenance. HTTP: `care-gateway serve` child on 127.0.0.1, auth on, "
        "time from request start to the 200 with the per-row report.",
    ]
    print(render(f"Social-care ingest bench — `{command}`", results, footer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
