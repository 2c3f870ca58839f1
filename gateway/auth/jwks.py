"""Client public keys: validate a registered JWKS, and fetch a JWKS URL with a small cache.

Only public RSA (≥ 2048 bits) and EC P-384 keys with a `kid` are accepted: those are the keys
RS384 and ES384 need, and refusing symmetric (`oct`) or private material at registration time
means a secret can never be confused with a public key later.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, RSAKey

MAX_JWKS_BYTES = 64 * 1024
CACHE_SECONDS = 300.0
# After a kid miss, refetch at most this often: key rotation works, a flood of bad kids does not
# turn into a flood of outbound requests.
REFETCH_SECONDS = 30.0
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class JwksError(ValueError):
    """A JWKS that cannot be used: malformed, private, or with an unsupported key."""


def parse_jwks(data: str | bytes | dict[str, Any]) -> KeySet:
    """The public keys of a JWKS document. Raises JwksError for anything the gateway will not trust."""
    try:
        doc = json.loads(data) if isinstance(data, str | bytes) else data
    except ValueError as exc:
        raise JwksError("JWKS is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        raise JwksError("JWKS needs a non-empty 'keys' list")
    keys: list[Key] = []
    kids: set[str] = set()
    for item in doc["keys"]:
        if not isinstance(item, dict):
            raise JwksError("JWKS keys must be objects")
        if _PRIVATE_MEMBERS & item.keys():
            raise JwksError("JWKS must hold public keys only")
        kid = item.get("kid")
        if not isinstance(kid, str) or not kid or kid in kids:
            raise JwksError("every key needs a unique 'kid'")
        kids.add(kid)
        keys.append(_import_public(item))
    return KeySet(keys)


def _rsa_bits(item: dict[str, Any]) -> int:
    n = item.get("n")
    if not isinstance(n, str):
        return 0
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length()
    except ValueError:
        return 0


def _import_public(item: dict[str, Any]) -> Key:
    kty = item.get("kty")
    if kty not in ("RSA", "EC"):
        raise JwksError(f"unsupported key type {kty!r}: RSA or EC only")
    if kty == "RSA" and _rsa_bits(item) < 2048:
        raise JwksError("RSA keys must be at least 2048 bits")
    if kty == "EC" and item.get("crv") != "P-384":
        raise JwksError("EC keys must use curve P-384 (ES384)")
    try:
        return RSAKey.import_key(item) if kty == "RSA" else ECKey.import_key(item)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise JwksError(f"unusable {kty} key") from exc


def check_jwks_url(url: str) -> str:
    """A JWKS URL must be https (plain http only on loopback, for development)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url
    raise JwksError("JWKS URL must be https")


@dataclass
class _Entry:
    keys: KeySet
    fetched_at: float


class JwksCache:
    """Fetches registered JWKS URLs with httpx and keeps each for `CACHE_SECONDS`.

    One cache per process; the httpx client is injected so tests can point it at a loopback
    server or a MockTransport.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._owns_client = client is None
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    async def keys(self, url: str, *, refresh: bool = False) -> KeySet:
        """The keys at `url`; `refresh` refetches unless the cached copy is younger than REFETCH_SECONDS.

        Raises JwksError when the URL cannot be fetched or does not hold a usable JWKS.
        """
        now = self._clock()
        entry = self._entries.get(url)
        if entry is not None:
            age = now - entry.fetched_at
            if age < (REFETCH_SECONDS if refresh else self._ttl):
                return entry.keys
        keys = parse_jwks(await self._fetch(url))
        self._entries[url] = _Entry(keys, now)
        return keys

    async def _fetch(self, url: str) -> bytes:
        check_jwks_url(url)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        client = self._client
        try:
            async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise JwksError(f"JWKS URL answered {response.status_code}")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksError("JWKS document too large")
                return body
        except httpx.HTTPError as exc:
            raise JwksError("JWKS URL could not be fetched") from exc

    async def aclose(self) -> None:
        """Close the httpx client if this cache created it (an injected one belongs to the caller)."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
