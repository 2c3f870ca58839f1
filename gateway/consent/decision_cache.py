"""Decisions remembered between requests: in this process always, shared through Redis when configured.

A key holds everything a class-level decision depends on (see `DecisionKey`): the caller
(client, organisation, role, purpose), the resource's class (`Facts`: type, people, source
organisations, categories, labels, profiles), and a generation for each policy input: the stored
version of each governing Patient and of each of their Consents, the (id, version) set of the
sharing agreements, the policy file and compartment versions, and the client-registry generation.

Those versions are read by the enforcement point in the same statement as the inputs it would
decide with, so a committed change to a Consent, an agreement, a Patient (opt-out, links) or a
client registration yields a new key in every process at once: the database commit is the
publication, and no message can be late or lost. An entry is never served past its decision's
`valid_until` (the next Consent/agreement period boundary), nor after `ttl`; old keys simply age
out (LRU here, expiry in Redis).

Break-glass decisions are never cached: each one carries its own expiry and obligations.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from gateway.consent.decision import Decision
from gateway.consent.facts import Facts
from gateway.logging import get_logger

if TYPE_CHECKING:
    from redis import Redis

log = get_logger("gateway.consent.cache")

KEY_PREFIX = "cg:pdp:v2:"
DEFAULT_TTL = timedelta(minutes=5)
DEFAULT_MAX_ENTRIES = 50_000
_REDIS_BACKOFF_S = 5.0  # after a Redis error, decide locally for this long before trying again

# (Patient id, its stored version or None when absent, ((Consent id, version), ...) sorted)
PatientState = tuple[str, int | None, tuple[tuple[str, int], ...]]


@dataclass(frozen=True)
class DecisionKey:
    """What one class-level decision depends on. Hashable; `digest` names it across processes."""

    caller: tuple[str | None, ...]  # client id, organisation, role, purpose of use
    facts: Facts
    people: tuple[PatientState, ...]  # one per governing Patient, in `facts.patients` order
    agreements: tuple[tuple[str, int], ...]  # (Basic id, version) of every stored agreement, sorted
    policy: tuple[str, ...]  # policy file version, compartment version
    clients: str | None = None  # client-registry generation
    deployment: str = ""  # one id per database: two deployments sharing a Redis never share entries

    @property
    def digest(self) -> str:
        material = [
            list(self.caller),
            self.facts.material(),
            [[pid, version, [list(c) for c in consents]] for pid, version, consents in self.people],
            [list(a) for a in self.agreements],
            list(self.policy),
            self.clients,
            self.deployment,
        ]
        return KEY_PREFIX + hashlib.sha256(orjson.dumps(material)).hexdigest()


def encode(decision: Decision) -> bytes:
    return orjson.dumps(
        {
            "permit": decision.permit,
            "reasons": list(decision.reasons),
            "policy_ids": list(decision.policy_ids),
            "obligations": sorted(decision.obligations),
            "patients": list(decision.patients),
            "valid_until": decision.valid_until.isoformat() if decision.valid_until else None,
        }
    )


def decode(raw: bytes) -> Decision:
    data = orjson.loads(raw)
    until = data.get("valid_until")
    return Decision(
        permit=bool(data["permit"]),
        reasons=tuple(data["reasons"]),
        policy_ids=tuple(data["policy_ids"]),
        obligations=frozenset(data["obligations"]),
        patients=tuple(data["patients"]),
        valid_until=datetime.fromisoformat(until) if until else None,
    )


@dataclass
class CacheStats:
    """Counters for tests and health pages (not for decisions)."""

    hits: int = 0
    redis_hits: int = 0
    misses: int = 0
    stored: int = 0
    redis_errors: int = 0


class DecisionCache:
    """An LRU of decisions in this process, backed by Redis (optional) shared between processes. Thread-safe."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        redis: Redis | None = None,
        ttl: timedelta = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if redis is None and redis_url:
            from redis import Redis

            redis = Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._redis = redis
        self._ttl = ttl
        self._max = max_entries
        self._local: OrderedDict[DecisionKey, tuple[Decision, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._redis_down_until = 0.0
        self.stats = CacheStats()

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def get_many(
        self, keys: Iterable[DecisionKey], now: datetime, *, shared: bool = True
    ) -> dict[DecisionKey, Decision]:
        """The cached decisions among `keys` still valid at `now` (local first, then one Redis round
        trip unless `shared` is False)."""
        found: dict[DecisionKey, Decision] = {}
        missing: list[DecisionKey] = []
        mono = time.monotonic()
        with self._lock:
            for key in keys:
                entry = self._local.get(key)
                if entry is not None and entry[1] > mono and _valid(entry[0], now):
                    self._local.move_to_end(key)
                    found[key] = entry[0]
                else:
                    if entry is not None:
                        del self._local[key]
                    missing.append(key)
            self.stats.hits += len(found)
        if missing and shared and self._redis_usable():
            from_redis = self._redis_get(missing, now)
            if from_redis:
                self._remember(from_redis)
                found.update(from_redis)
                self.stats.redis_hits += len(from_redis)
                missing = [k for k in missing if k not in from_redis]
        self.stats.misses += len(missing)
        return found

    def put_many(self, decisions: Mapping[DecisionKey, Decision], now: datetime, *, shared: bool = True) -> None:
        """Remember fresh decisions (break-glass ones are refused: they carry their own expiry), in
        Redis too unless `shared` is False."""
        keep = {k: d for k, d in decisions.items() if not d.break_glass and d.expires_at is None and _valid(d, now)}
        if not keep:
            return
        self._remember(keep)
        self.stats.stored += len(keep)
        if shared and self._redis_usable():
            self._redis_put(keep, now)

    def clear(self) -> None:
        """Forget this process's entries (Redis entries age out by themselves)."""
        with self._lock:
            self._local.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._local)

    # -- internals --------------------------------------------------------------------------------

    def _remember(self, decisions: Mapping[DecisionKey, Decision]) -> None:
        expires = time.monotonic() + self._ttl.total_seconds()
        with self._lock:
            for key, decision in decisions.items():
                self._local[key] = (decision, expires)
                self._local.move_to_end(key)
            while len(self._local) > self._max:
                self._local.popitem(last=False)

    def _redis_usable(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        self.stats.redis_errors += 1
        self._redis_down_until = time.monotonic() + _REDIS_BACKOFF_S
        log.warning("decision_cache.redis_unavailable", error=type(exc).__name__)

    def _redis_get(self, keys: list[DecisionKey], now: datetime) -> dict[DecisionKey, Decision]:
        from redis.exceptions import RedisError

        assert self._redis is not None
        try:
            raws: list[Any] = self._redis.mget([k.digest for k in keys])
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return {}
        found = {}
        for key, raw in zip(keys, raws, strict=True):
            if raw is None:
                continue
            try:
                decision = decode(raw)
            except (ValueError, KeyError, TypeError):
                continue  # unreadable entry: decide again
            if _valid(decision, now):
                found[key] = decision
        return found

    def _redis_put(self, decisions: Mapping[DecisionKey, Decision], now: datetime) -> None:
        from redis.exceptions import RedisError

        assert self._redis is not None
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for key, decision in decisions.items():
                    pipe.set(key.digest, encode(decision), px=_ttl_ms(decision, now, self._ttl))
                pipe.execute()
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)


def _valid(decision: Decision, now: datetime) -> bool:
    return decision.valid_until is None or now < decision.valid_until


def _ttl_ms(decision: Decision, now: datetime, ttl: timedelta) -> int:
    left = ttl
    if decision.valid_until is not None:
        left = min(left, decision.valid_until - now)
    return max(1, int(left.total_seconds() * 1000))
