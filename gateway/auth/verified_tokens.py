"""Remember access tokens this process has already verified, until they expire.

A backend client sends the same token with every request for up to five minutes; checking its
ES256 signature each time is the largest fixed cost of an authorised request. A token is an
immutable string signed by this gateway's own key, so once verified its claims cannot change:
only time can invalidate it (checked on every hit), and disabling a client is still checked per
request by the caller.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from threading import Lock

from gateway.auth.tokens import CLOCK_SKEW_SECONDS, AccessClaims, TokenError

Verify = Callable[[str, float], AccessClaims]


class VerifiedTokens:
    """A bounded LRU of token -> claims in front of a verifier. Failures are never remembered,
    so a refused token costs a full check every time (no negative cache to poison)."""

    def __init__(self, verify: Verify, *, capacity: int = 4096) -> None:
        self._verify = verify
        self._capacity = capacity
        self._claims: OrderedDict[str, tuple[AccessClaims, int]] = OrderedDict()
        self._lock = Lock()

    def __call__(self, token: str, now: float) -> AccessClaims:
        with self._lock:
            hit = self._claims.get(token)
            if hit is not None:
                self._claims.move_to_end(token)
        if hit is not None:
            claims, not_before = hit
            if claims.expires_at <= now:
                self._forget(token)
                raise TokenError("token has expired")
            if not_before <= now + CLOCK_SKEW_SECONDS:
                return claims
        claims = self._verify(token, now)
        with self._lock:
            # A token verified at `now` is valid from then on; its own nbf was checked by the verifier.
            self._claims[token] = (claims, int(now))
            while len(self._claims) > self._capacity:
                self._claims.popitem(last=False)
        return claims

    def _forget(self, token: str) -> None:
        with self._lock:
            self._claims.pop(token, None)

    def __len__(self) -> int:
        return len(self._claims)
