"""Page links: opaque, signed cursors bound to the search and to the caller.

A cursor carries the sort key of the row a page starts after (keyset paging), so pages stay
correct while resources are created or deleted underneath. Its HMAC covers the canonical
search parameters and the caller's identity: a link replayed by another client, or glued
onto a different search, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

import orjson

from gateway.fhir.errors import invalid
from gateway.store.search.query import Cursor, decode_key, encode_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: str, scope: str) -> str:
        digest = hmac.new(self._secret, f"{payload}|{scope}".encode(), hashlib.sha256).digest()
        return _b64(digest[:18])

    def sign(self, cursor: Cursor, scope: str) -> str:
        payload = _b64(orjson.dumps({"b": cursor.backwards, "k": encode_key(cursor.key)}))
        return f"{payload}.{self._mac(payload, scope)}"

    def verify(self, token: str, scope: str) -> Cursor:
        payload, _, mac = token.partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload, scope)):
            raise invalid("this page link is not valid for this search or this client")
        try:
            data: dict[str, Any] = orjson.loads(_unb64(payload))
            return Cursor(backwards=bool(data["b"]), key=decode_key(data["k"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise invalid("malformed page link") from exc


def search_scope(rtype: str, canonical: tuple[tuple[str, str], ...], caller: str) -> str:
    """What a cursor is bound to: the type, the effective parameters and who asked."""
    return f"{rtype}?{urlencode(sorted(canonical))}#{caller}"


def page_url(base: str, canonical: tuple[tuple[str, str], ...], cursor_token: str | None = None) -> str:
    params = list(canonical)
    if cursor_token:
        params.append(("_cursor", cursor_token))
    return f"{base}?{urlencode(params)}" if params else base
