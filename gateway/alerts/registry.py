"""Who is case-managed right now: derived from EpisodeOfCare writes, kept as a fast lookup.

The store is the truth; this registry is an index over it that every presentation consults, so it
must answer in well under a millisecond (in memory) or one round trip (Redis). A person is
case-managed while an `EpisodeOfCare` whose type is in `CASE_MANAGED_EPISODE_TYPES` is `active`
and has both `careManager` and at least one `team` (the CareTeam) set. Enrolment, review and
closure are ordinary FHIR writes: the caller feeds every stored version of an EpisodeOfCare to
`apply_episode`, in commit order, and the registry adds, updates or removes the entry.

Data contract on EpisodeOfCare (the ward and the care plan have no R4 element of their own):

- ward: extension `EXT_VIRTUAL_WARD` with `valueReference` to the ward's `Location`
  (physicalType `vi` virtual); `ward_id` is that Location's id and `ward_name` its display.
  Without the extension the ward is the programme itself, scoped by the managing organisation:
  `ward_id = "<managingOrganization id>.<type code>"` and the name is the type's text/display.
- care plan: extension `EXT_CARE_PLAN` with `valueReference` to the CarePlan (optional; the
  alert can still be raised without one).

The Redis implementation uses redis-py's asyncio client because the gateway's workers and web
face are asyncio (DESIGN.md); the `CaseManagedRegistry` Protocol is therefore async, and the
in-memory implementation offers the same coroutine methods so either can be injected.

Redis keys (all under one prefix, default `cg:cm:`):

- `<prefix>patient:<patient id>`  hash  episode id -> entry JSON   (the hot lookup: one HGETALL)
- `<prefix>ward:<ward id>`        set   episode ids on that ward
- `<prefix>episode:<episode id>`  string entry JSON                (to undo the old placement)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import orjson
from redis.exceptions import WatchError

from gateway.codes import CASE_MANAGED_EPISODE_TYPES, EPISODE_TYPE_SYSTEM, EXT_BASE
from gateway.types import JSON

if TYPE_CHECKING:
    from redis.asyncio import Redis

EXT_VIRTUAL_WARD = f"{EXT_BASE}/virtual-ward"
EXT_CARE_PLAN = f"{EXT_BASE}/care-plan"


@dataclass(frozen=True)
class CaseManagedEntry:
    """One active case-management episode: enough to raise an alert without another read."""

    patient_id: str
    episode_id: str
    episode_type: str
    ward_id: str
    ward_name: str
    care_manager: str
    care_manager_display: str | None = None
    teams: tuple[str, ...] = ()
    care_plan: str | None = None
    managing_organization: str | None = None
    since: str | None = None

    @property
    def patient_ref(self) -> str:
        return f"Patient/{self.patient_id}"

    @property
    def episode_ref(self) -> str:
        return f"EpisodeOfCare/{self.episode_id}"

    def to_json(self) -> bytes:
        data = asdict(self)
        data["teams"] = list(self.teams)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CaseManagedEntry:
        data = orjson.loads(raw)
        data["teams"] = tuple(data.get("teams") or ())
        return cls(**data)


def ref_id(reference: str | None) -> str | None:
    """The logical id in `Type/id`, `https://…/Type/id` or `Type/id/_history/n`."""
    if not reference:
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 else None


def relative_ref(reference: str | None) -> str | None:
    """`Type/id` for any literal reference form, so comparisons do not depend on the base URL."""
    if not reference:
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _case_managed_type(episode: JSON) -> tuple[str, str] | None:
    for concept in episode.get("type") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == EPISODE_TYPE_SYSTEM and coding.get("code") in CASE_MANAGED_EPISODE_TYPES:
                label = concept.get("text") or coding.get("display") or coding["code"]
                return coding["code"], label
    return None


def _extension_ref(resource: JSON, url: str) -> JSON | None:
    for ext in resource.get("extension") or []:
        if ext.get("url") == url and isinstance(ext.get("valueReference"), dict):
            value: JSON = ext["valueReference"]
            return value
    return None


def _ended(episode: JSON, now: datetime | None) -> bool:
    end = (episode.get("period") or {}).get("end")
    if not end or now is None:
        return False
    try:
        when = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=now.tzinfo)
    return when <= now


def case_managed_entry(episode: JSON, *, now: datetime | None = None) -> CaseManagedEntry | None:
    """The registry entry an EpisodeOfCare version implies, or None when it does not case-manage.

    `now` (optional) also ends an episode whose `period.end` has passed while still `active`.
    """
    if episode.get("resourceType") != "EpisodeOfCare" or episode.get("status") != "active":
        return None
    kind = _case_managed_type(episode)
    patient_id = ref_id((episode.get("patient") or {}).get("reference"))
    manager = relative_ref((episode.get("careManager") or {}).get("reference"))
    teams = tuple(r for t in episode.get("team") or [] if (r := relative_ref(t.get("reference"))))
    episode_id = episode.get("id")
    if kind is None or not patient_id or not manager or not teams or not episode_id or _ended(episode, now):
        return None
    code, label = kind
    organisation = relative_ref((episode.get("managingOrganization") or {}).get("reference"))
    ward = _extension_ref(episode, EXT_VIRTUAL_WARD)
    if ward and ref_id(ward.get("reference")):
        ward_id = str(ref_id(ward.get("reference")))
        ward_name = ward.get("display") or label
    else:
        ward_id = f"{ref_id(organisation) or 'unscoped'}.{code}"
        ward_name = label
    care_plan = _extension_ref(episode, EXT_CARE_PLAN)
    return CaseManagedEntry(
        patient_id=patient_id,
        episode_id=str(episode_id),
        episode_type=code,
        ward_id=ward_id,
        ward_name=ward_name,
        care_manager=manager,
        care_manager_display=(episode.get("careManager") or {}).get("display"),
        teams=teams,
        care_plan=relative_ref(care_plan.get("reference")) if care_plan else None,
        managing_organization=organisation,
        since=(episode.get("period") or {}).get("start"),
    )


class CaseManagedRegistry(Protocol):
    """The fast index of case-managed people; fed every EpisodeOfCare version in commit order."""

    async def apply_episode(self, episode: JSON) -> CaseManagedEntry | None:
        """Add, update or remove the episode's entry; returns the entry now held (None = removed)."""
        ...

    async def remove_episode(self, episode_id: str) -> None:
        """Forget an episode (a FHIR delete)."""
        ...

    async def lookup(self, patient_ids: Iterable[str]) -> list[CaseManagedEntry]:
        """Entries for any of these Patient ids (the presenting record and everything linked to it)."""
        ...

    async def ward(self, ward_id: str) -> list[CaseManagedEntry]:
        """Everyone currently on one ward, ordered by patient id then episode id."""
        ...


def _ordered(entries: Iterable[CaseManagedEntry]) -> list[CaseManagedEntry]:
    return sorted(entries, key=lambda e: (e.patient_id, e.episode_id))


class InMemoryRegistry:
    """Single-process registry: rebuilt from the store at start-up, then kept in step by events."""

    def __init__(self) -> None:
        self._episodes: dict[str, CaseManagedEntry] = {}
        self._by_patient: dict[str, set[str]] = {}
        self._by_ward: dict[str, set[str]] = {}

    async def apply_episode(self, episode: JSON) -> CaseManagedEntry | None:
        entry = case_managed_entry(episode)
        await self.remove_episode(str(episode.get("id")))
        if entry is not None:
            self._episodes[entry.episode_id] = entry
            self._by_patient.setdefault(entry.patient_id, set()).add(entry.episode_id)
            self._by_ward.setdefault(entry.ward_id, set()).add(entry.episode_id)
        return entry

    async def remove_episode(self, episode_id: str) -> None:
        old = self._episodes.pop(episode_id, None)
        if old is None:
            return
        self._by_patient.get(old.patient_id, set()).discard(episode_id)
        self._by_ward.get(old.ward_id, set()).discard(episode_id)
        if not self._by_patient.get(old.patient_id):
            self._by_patient.pop(old.patient_id, None)
        if not self._by_ward.get(old.ward_id):
            self._by_ward.pop(old.ward_id, None)

    async def lookup(self, patient_ids: Iterable[str]) -> list[CaseManagedEntry]:
        found = {e for pid in set(patient_ids) for e in self._by_patient.get(pid, ())}
        return _ordered(self._episodes[e] for e in found)

    async def ward(self, ward_id: str) -> list[CaseManagedEntry]:
        return _ordered(self._episodes[e] for e in self._by_ward.get(ward_id, ()))


class RedisRegistry:
    """Registry shared by several gateway processes through one Redis (see module docstring for keys).

    Updates of one episode are made atomic with WATCH/MULTI on its episode key, so a reader never
    sees a patient placed on two wards by the same episode.
    """

    def __init__(self, redis: Redis, *, prefix: str = "cg:cm:") -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, kind: str, ident: str) -> str:
        return f"{self._prefix}{kind}:{ident}"

    async def apply_episode(self, episode: JSON) -> CaseManagedEntry | None:
        entry = case_managed_entry(episode)
        await self._replace(str(episode.get("id")), entry)
        return entry

    async def remove_episode(self, episode_id: str) -> None:
        await self._replace(episode_id, None)

    async def _replace(self, episode_id: str, entry: CaseManagedEntry | None) -> None:
        episode_key = self._key("episode", episode_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(episode_key)
                    raw = await pipe.get(episode_key)
                    pipe.multi()
                    if raw is not None:
                        old = CaseManagedEntry.from_json(raw)
                        pipe.hdel(self._key("patient", old.patient_id), episode_id)
                        pipe.srem(self._key("ward", old.ward_id), episode_id)
                        pipe.delete(episode_key)
                    if entry is not None:
                        blob = entry.to_json()
                        pipe.set(episode_key, blob)
                        pipe.hset(self._key("patient", entry.patient_id), episode_id, blob)
                        pipe.sadd(self._key("ward", entry.ward_id), episode_id)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def lookup(self, patient_ids: Iterable[str]) -> list[CaseManagedEntry]:
        ids = sorted(set(patient_ids))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for pid in ids:
                pipe.hvals(self._key("patient", pid))
            results = await pipe.execute()
        return _ordered(CaseManagedEntry.from_json(raw) for values in results for raw in values)

    async def ward(self, ward_id: str) -> list[CaseManagedEntry]:
        members = await self._redis.smembers(self._key("ward", ward_id))
        if not members:
            return []
        keys = [self._key("episode", m.decode() if isinstance(m, bytes) else m) for m in members]
        blobs = await self._redis.mget(keys)
        return _ordered(CaseManagedEntry.from_json(b) for b in blobs if b is not None)
