"""HL7 v2 ADT over MLLP ingest bench: messages/s end to end (ACK received), 1 and 8 concurrent senders.

The gateway runs as `care-gateway serve` (the full gateway: tokens, consent, intake, event relay,
alert pipeline, subscriptions) in a child process on 127.0.0.1; the senders are asyncio tasks in
this process, each holding one MLLP connection and sending its next message only after the ACK
of the last (as a real interface engine does). A message counts when its ACK (MSA AA/CA) is back,
which the intake sends only after the message's transaction committed.

Messages: A04 / A01 / A08 for distinct synthetic people (NHS numbers from the 999 range, valid
Modulus 11), each a new person and a new visit, so every message writes a Patient and an
Encounter (plus receipt and outbox rows). The event relay and alert pipeline run in the same
server process, so their share of the CPU is in the figure.

This module also holds the helpers the other gateway benches share: `gateway_processes` (one or
more `care-gateway serve` children on one database) and `adt_message`.

    .venv/bin/python -m bench mllp-ingest                 # 3,000 messages per run
    .venv/bin/python -m bench mllp-ingest --quick         # 400 messages per run
    .venv/bin/python -m bench mllp-ingest --in-process    # and the intake alone, in this process
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.fhir_core import (  # noqa: E402
    PG_ADMIN_URL,
    NhsNumbers,
    Result,
    free_port,
    postgres_database,
    sqlite_database,
)
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM  # noqa: E402
from gateway.intake.mllp import MllpConnection  # noqa: E402
from gateway.settings import Settings  # noqa: E402

GOAL_MSG_PER_S = 500.0
REDIS_BENCH_URL = "redis://127.0.0.1:6379/9"  # a Redis database of the bench's own: flushed before use

# Synthetic names built from syllables (about 2,700 surnames, 300 given names) and postcodes in the
# non-geographic ZZ99 area, so demographic blocking sees a realistic spread rather than a handful of
# huge blocks (which would make identity matching look quadratic).
_SYLLABLES = ("ab", "bel", "cor", "dun", "el", "fen", "gar", "hol", "ith", "jor", "kel", "lan", "mor", "nor", "ost")
_ENDINGS = ("by", "den", "ford", "ham", "ley", "more", "son", "ton", "well", "wick", "worth", "er")
_GIVEN_STARTS = ("Al", "Be", "Ca", "Da", "El", "Fa", "Ga", "Ha", "Is", "Ja", "Ke", "Li", "Ma", "Ne", "Ol")
_GIVEN_ENDS = ("ex", "rin", "mon", "na", "la", "ric", "vin", "ton", "sa", "lie", "ra", "den", "ian", "ora", "y")


def synthetic_name(rng: random.Random) -> tuple[str, str]:
    """(family, given): made-up names, not drawn from any list of real people."""
    family = (rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES) + rng.choice(_ENDINGS)).capitalize()
    return family, rng.choice(_GIVEN_STARTS) + rng.choice(_GIVEN_ENDS)


def synthetic_postcode(rng: random.Random) -> str:
    return f"ZZ99 {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"


def synthetic_patient(nhs: str, rng: random.Random) -> dict[str, object]:
    family, given = synthetic_name(rng)
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": rng.choice(("female", "male", "other", "unknown")),
        "birthDate": f"{rng.randint(1925, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "address": [{"use": "home", "postalCode": synthetic_postcode(rng)}],
    }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the gateway in child processes ---------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    base: str
    mllp_port: int
    pid: int = 0  # the serving process (for its CPU time)

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"


def gateway_env(database_url: str, data_dir: Path, *, auth: bool, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        PYTHONPATH=str(ROOT),
        GATEWAY_DATA_DIR=str(data_dir),
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_LOG_LEVEL="WARNING",  # one log line per request would be measured too
        GATEWAY_AUTH_REQUIRED="true" if auth else "false",
        GATEWAY_WARD_LIST_PUSH_ENABLED="false",
        GATEWAY_PAGING_SECRET="bench-paging-secret",
    )
    if redis_url:
        env["GATEWAY_REDIS_URL"] = redis_url
    return env


def bench_settings(database_url: str, data_dir: Path, *, auth: bool, redis_url: str | None = None) -> Settings:
    """The Settings the children will read from their environment (for in-bench `build_services`)."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        log_level="WARNING",
        auth_required=auth,
        ward_list_push_enabled=False,
        paging_secret="bench-paging-secret",
        redis_url=redis_url,
        mllp_port=0,
    )


def _wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway server did not become ready within {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def gateway_processes(
    database_url: str, data_dir: Path, *, count: int = 1, auth: bool = True, redis_url: str | None = None
) -> Iterator[list[Endpoint]]:
    """`count` × `care-gateway serve` on one database (and Redis when given); stdout goes to stderr."""
    exe = Path(sys.executable).with_name("care-gateway")
    cmd_base = [str(exe)] if exe.exists() else [sys.executable, "-m", "gateway.cli"]
    env = gateway_env(database_url, data_dir, auth=auth, redis_url=redis_url)
    procs: list[subprocess.Popen[bytes]] = []
    endpoints: list[Endpoint] = []
    try:
        for _ in range(count):
            port, mllp_port = free_port(), free_port()
            cmd = [*cmd_base, "serve", "--host", "127.0.0.1", "--port", str(port), "--mllp-port", str(mllp_port)]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sys.stderr))
            endpoints.append(Endpoint(f"http://127.0.0.1:{port}", mllp_port, procs[-1].pid))
        for proc, ep in zip(procs, endpoints, strict=True):
            _wait_ready(proc, ep.base)
        yield endpoints
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def flush_bench_redis(url: str = REDIS_BENCH_URL) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def database(backend: str, postgres_url: str = PG_ADMIN_URL) -> Iterator[tuple[str, Path]]:
    with ExitStack() as stack:
        if backend == "SQLite":
            yield stack.enter_context(sqlite_database())
        else:
            yield stack.enter_context(postgres_database(postgres_url))


# -- messages -------------------------------------------------------------------------------------


def hl7_ts(t: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def adt_message(
    event: str, control_id: str, nhs: str, mrn: str, visit: str, *, rng: random.Random, patient_class: str = "E"
) -> bytes:
    """One ADT^<event> from the Northtown trust (sender facility Z9X), ER7 with CR segment ends."""
    ts = hl7_ts(time.time())
    family, given = synthetic_name(rng)
    pv1 = ["PV1", "1", patient_class, "ED^MAJ^CUB4^Z9X^^^MAIN", "E"] + [""] * 14 + [f"{visit}^^^EPI^VN"]
    pv1 += [""] * (44 - len(pv1)) + [ts]
    segments = [
        f"MSH|^~\\&|EPIC|Z9X|CAREGW|VWARD|{ts}||ADT^{event}^ADT_A01|{control_id}|P|2.4|||AL|NE",
        f"EVN|{event}|{ts}",
        f"PID|1||{mrn}^^^EPI^MR~{nhs}^^^NHS^HN||{family.upper()}^{given}||"
        f"{rng.randint(1925, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}|{rng.choice('MFU')}|||"
        f"{rng.randint(1, 200)} Test Street^^Northtown^^{synthetic_postcode(rng)}^GBR^H",
        "|".join(pv1),
    ]
    return ("\r".join(segments) + "\r").encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ack_accepted(ack: bytes) -> bool:
    return b"MSA|AA" in ack or b"MSA|CA" in ack


# -- the bench ------------------------------------------------------------------------------------


async def send_all(port: int, messages: list[bytes], senders: int) -> tuple[float, int]:
    """Send `messages` over `senders` connections, each waiting for its ACK; (seconds, rejected)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)
    rejected = 0

    async def sender() -> None:
        nonlocal rejected
        async with MllpConnection("127.0.0.1", port, timeout=60) as conn:
            while True:
                try:
                    msg = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if not ack_accepted(await conn.send(msg)):
                    rejected += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return time.perf_counter() - t0, rejected


def make_messages(count: int, numbers: NhsNumbers, rng: random.Random, tag: str) -> list[bytes]:
    events = ("A04", "A01", "A08")
    out = []
    for i in range(count):
        event = events[i % 3]
        out.append(
            adt_message(
                event,
                f"BENCH{tag}{i:07d}",
                numbers.next(),
                f"M{tag}{i:07d}",
                f"V{tag}{i:07d}",
                rng=rng,
                patient_class="I" if event == "A01" else "E",
            )
        )
    return out


def run_backend(backend: str, count: int, sender_counts: list[int], seed: int, postgres_url: str) -> Result:
    result = Result(backend)
    rng = random.Random(seed)
    numbers = NhsNumbers(seed)
    with database(backend, postgres_url) as (url, tmp), gateway_processes(url, tmp / "data") as (ep,):
        warm = make_messages(50, numbers, rng, "W")
        asyncio.run(send_all(ep.mllp_port, warm, 1))
        for senders in sender_counts:
            messages = make_messages(count, numbers, rng, f"S{senders}")
            log(f"{backend}: {count:,} messages over {senders} sender(s)")
            cpu_before = cpu_seconds(ep.pid)
            seconds, rejected = asyncio.run(send_all(ep.mllp_port, messages, senders))
            cpu = cpu_seconds(ep.pid) - cpu_before
            if rejected:
                result.notes.append(f"{rejected} of {count} messages with {senders} sender(s) were not accepted")
            rate = count / seconds
            goal = f"≥ {GOAL_MSG_PER_S:,.0f} msg/s"
            result.add(
                f"ADT over MLLP, {senders} sender(s) (n={count:,})",
                f"{rate:,.0f} msg/s",
                goal,
                rate >= GOAL_MSG_PER_S,
            )
            if cpu:
                # The machine is shared: the server's own CPU per message is the steadier figure.
                result.add(f"… gateway CPU per message, {senders} sender(s)", f"{cpu / count * 1000:.2f} ms", "", None)
    return result


def run_in_process(backend: str, count: int, sender_counts: list[int], seed: int, postgres_url: str) -> Result:
    """The HL7 intake alone, in this process (no MLLP, no event relay or alert pipeline): N senders
    are modelled as group-commit batches of N (what the writer takes when N connections each have
    a message waiting). Prints CPU time per message too, the steadier figure on a shared machine."""
    from gateway.app import build_services
    from gateway.intake.web import hl7_intake_of

    result = Result(f"{backend} in-process")
    rng = random.Random(seed)
    numbers = NhsNumbers(seed)
    with database(backend, postgres_url) as (url, tmp):
        services = build_services(bench_settings(url, tmp / "data", auth=True))
        intake = hl7_intake_of(services)
        try:
            for m in make_messages(300, numbers, rng, "W"):
                intake.handle(m)
            for senders in sender_counts:
                messages = make_messages(count, numbers, rng, f"I{senders}")
                log(f"{backend} in-process: {count:,} messages in batches of {senders}")
                cpu0, t0 = time.process_time(), time.perf_counter()
                acks = [a for i in range(0, count, senders) for a in intake.handle_batch(messages[i : i + senders])]
                seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                rejected = sum(1 for a in acks if not (isinstance(a, bytes) and ack_accepted(a)))
                if rejected:
                    result.notes.append(f"{rejected} of {count} messages in batches of {senders} were not accepted")
                result.add(
                    f"intake alone, batches of {senders} (n={count:,})",
                    f"{count / seconds:,.0f} msg/s · CPU {cpu / count * 1000:.2f} ms/msg",
                )
        finally:
            services.store.engine.dispose()
    return result


def render(title: str, results: list[Result], footer: list[str]) -> str:
    lines = [title, "", "| back end | measure | figure | goal | met |", "|---|---|---|---|---|"]
    for res in results:
        for row in res.rows:
            met = "" if row.met is None else ("yes" if row.met else "**no**")
            lines.append(f"| {res.backend} | {row.metric} | {row.value} | {row.goal} | {met} |")
    lines.append("")
    lines += footer
    for res in results:
        lines += [f"{res.backend}: {note}" for note in res.notes]
    return "\n".join(lines)


def backends(choice: str) -> list[str]:
    return [b for b, key in (("SQLite", "sqlite"), ("PostgreSQL", "postgres")) if choice in (key, "both")]


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--postgres-url", default=PG_ADMIN_URL, help="PostgreSQL to bench in a throw-away schema")
    parser.add_argument("--seed", type=int, default=3)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench mllp-ingest",
        description="ADT over MLLP: messages/s end to end (ACK received) with 1 and 8 concurrent senders.",
    )
    parser.add_argument("--messages", type=int, help="messages per run (default 3,000; quick 400)")
    parser.add_argument("--senders", default="1,8", help="comma-separated sender counts (default 1,8)")
    parser.add_argument("--quick", action="store_true", help="400 messages per run")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="also time the HL7 intake alone in this process (group-commit batches)",
    )
    add_common(parser)
    args = parser.parse_args(argv)
    count = args.messages or (400 if args.quick else 3_000)
    sender_counts = [int(s) for s in args.senders.split(",")]
    results = [run_backend(b, count, sender_counts, args.seed, args.postgres_url) for b in backends(args.backend)]
    if args.in_process:
        results += [
            run_in_process(b, count, sender_counts, args.seed, args.postgres_url) for b in backends(args.backend)
        ]
    command = ("python -m bench mllp-ingest " + " ".join(argv)).strip()
    footer = [
        "`care-gateway serve` (1 uvicorn process, auth on, no Redis) in a child process on 127.0.0.1; "
        "senders are asyncio tasks in the bench process, one MLLP connection each, next message after the ACK. "
        "Each message is a new person and a new visit (A04/A01/A08 in turn).",
        "The project reads the goal as the gateway's throughput with 8 concurrent senders (README); a lone "
        "sender waits for each ACK, which follows its message's durable commit, so its rate is one over that "
        "round trip and is shown against the same figure for reference.",
    ]
    print(render(f"MLLP ingest bench — `{command}`", results, footer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
