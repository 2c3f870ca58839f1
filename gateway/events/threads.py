"""The event machinery's own worker threads for its blocking (database) calls.

`asyncio.to_thread` shares the loop's default executor, which has only `cpu_count + 4` workers
(6 on a 2-core host) and is also where request handlers run their blocking work (the MLLP
intake does, one job per message). Under load those jobs filled every worker, and each relay
claim, alert write and delivery step queued behind them: the alert path stalled while the
database was idle. A pool of its own keeps event work moving whatever the intake is doing.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from gateway.store.engine import URGENT_WRITES

P = ParamSpec("P")
T = TypeVar("T")

WORKERS = 8
_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="events")


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread`, on the event machinery's pool (context variables go along, as there).

    Its SQLite write transactions are urgent (`URGENT_WRITES`): they are on the alert latency path.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(URGENT_WRITES.set, True)
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool, call)


async def in_thread_unhurried(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`in_thread` for bookkeeping off the latency path (the relay's marks): its SQLite writes wait
    for the lock in SQLite's own backoff. Polling every 0.5 ms for a mark's lock while the intake
    committed cost more gateway CPU per message than the intake itself."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(URGENT_WRITES.set, False)
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool, call)
