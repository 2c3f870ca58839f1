"""CPU of one rest-hook POST exchange on a kept connection: httpx.AsyncClient against `HookPoster`.

The receiver runs in a child process, so `time.process_time()` counts the client side only (the
event loop, the HTTP client, the socket calls). `--other PATH` adds another `hookpost.py` (e.g. a
`git archive` copy of an older commit) to compare. Clients are alternated round by round.

    .venv/bin/python -m bench hook-post                       # 2,000 POSTs per client, 5 rounds
    .venv/bin/python -m bench hook-post --other /tmp/ab/base/gateway/alerts/subscriptions/hookpost.py
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
HEADERS = [("Authorization", "Bearer abcdefghijklmnop"), ("Content-Type", "application/fhir+json")]
BODY = (
    b'{"resourceType":"Bundle","type":"subscription-notification","entry":['
    + b",".join(
        b'{"fullUrl":"urn:uuid:%032d","resource":{"resourceType":"Encounter","id":"x%d","status":"in-progress"}}'
        % (i, i)
        for i in range(12)
    )
    + b"]}"
)
WARM_UP = 200


def _receiver(ports: Any) -> None:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields = (line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
                length = next(int(value) for name, value in fields if name.strip().lower() == b"content-length")
                await reader.readexactly(length)
                writer.write(OK)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(serve())


def _load(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def _measure(one: Callable[[], Awaitable[None]], n: int) -> float:
    for _ in range(WARM_UP):
        await one()
    start = time.process_time()
    for _ in range(n):
        await one()
    return (time.process_time() - start) / n * 1e6


async def _httpx(url: str, n: int) -> float:
    import httpx

    async with httpx.AsyncClient() as client:

        async def one() -> None:
            response = await client.post(url, content=BODY, headers=dict(HEADERS), timeout=10, follow_redirects=False)
            assert response.status_code == 200

        return await _measure(one, n)


async def _poster(module: ModuleType, url: str, n: int) -> float:
    poster = module.HookPoster()
    origin, target = module.target_of(url)

    async def one() -> None:
        assert await poster.post(origin, target, HEADERS, BODY, timeout=10) == 200

    try:
        return await _measure(one, n)
    finally:
        await poster.aclose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hook-post", description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="POSTs per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--other", help="another hookpost.py to compare")
    args = parser.parse_args(argv)
    from gateway.alerts.subscriptions import hookpost

    clients: dict[str, ModuleType | None] = {"httpx": None, "HookPoster": hookpost}
    if args.other:
        clients["other HookPoster"] = _load("bench_other_hookpost", args.other)
    ports: Any = multiprocessing.Queue()
    receiver = multiprocessing.Process(target=_receiver, args=(ports,), daemon=True)
    receiver.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=10)}/hook"
        results: dict[str, list[float]] = {name: [] for name in clients}
        for round_ in range(args.rounds):
            order = list(clients) if round_ % 2 == 0 else list(reversed(clients))
            for name in order:
                module = clients[name]
                cpu = asyncio.run(_httpx(url, args.n) if module is None else _poster(module, url, args.n))
                results[name].append(cpu)
                print(f"round {round_} {name}: {cpu:.1f} µs CPU per POST", flush=True)
    finally:
        receiver.terminate()
    print(f"\n{args.n:,} POSTs of {len(BODY):,} bytes per client and round, kept-alive, receiver in a child process")
    for name, values in results.items():
        low, high = min(values), max(values)
        print(f"{name}: median {statistics.median(values):.0f} µs CPU per POST ({low:.0f}–{high:.0f})")
    return 0
