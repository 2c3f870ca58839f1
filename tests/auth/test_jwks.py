"""Registered client keys: only public RSA ≥ 2048 / EC P-384 keys with a kid; JWKS URLs fetched and
cached (httpx.MockTransport here; the token-endpoint tests use a real loopback server)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth.jwks import REFETCH_SECONDS, JwksCache, JwksError, check_jwks_url, parse_jwks


def test_parse_accepts_rsa_and_p384(rsa_key: Any, ec_key: Any, kit: Any) -> None:
    keys = parse_jwks(kit.jwks(rsa_key, ec_key))
    assert [k.kid for k in keys] == ["rsa-1", "ec-1"]
    assert all(not k.is_private for k in keys)


def _key(kit_key: Any, **changes: Any) -> str:
    jwk = {**kit_key.jwk(), **changes}
    return json.dumps({"keys": [{k: v for k, v in jwk.items() if v is not None}]})


@pytest.mark.parametrize(
    "make",
    [
        lambda rsa_key, kit: "not json",
        lambda rsa_key, kit: json.dumps({"keys": []}),
        lambda rsa_key, kit: json.dumps([]),
        lambda rsa_key, kit: json.dumps({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}),
        lambda rsa_key, kit: _key(rsa_key, kid=None),
        lambda rsa_key, kit: _key(rsa_key, d="AQAB"),  # private member
        lambda rsa_key, kit: json.dumps({"keys": [rsa_key.jwk(), rsa_key.jwk()]}),  # duplicate kid
        lambda rsa_key, kit: _key(rsa_key, kty="OKP"),
    ],
)
def test_parse_refuses_unusable_jwks(make: Any, rsa_key: Any, kit: Any) -> None:
    with pytest.raises(JwksError):
        parse_jwks(make(rsa_key, kit))


def test_parse_refuses_weak_rsa_and_other_curves(kit: Any) -> None:
    weak = kit.key_class("weak", rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS384")
    p256 = kit.key_class("p256", ec.generate_private_key(ec.SECP256R1()), "ES256")
    for key in (weak, p256):
        with pytest.raises(JwksError):
            parse_jwks(kit.jwks(key))


def test_url_must_be_https_except_loopback() -> None:
    assert check_jwks_url("https://keys.example/jwks.json")
    assert check_jwks_url("http://127.0.0.1:8000/jwks.json")
    for bad in ("http://keys.example/jwks.json", "file:///etc/passwd", "ftp://x/jwks"):
        with pytest.raises(JwksError):
            check_jwks_url(bad)


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_fetches_once_then_refetches_after_ttl(ec_key: Any, kit: Any) -> None:
    hits: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        return httpx.Response(200, text=kit.jwks(ec_key))

    ticker = Ticker()
    cache = JwksCache(httpx.AsyncClient(transport=httpx.MockTransport(handler)), ttl=300, clock=ticker)
    url = "https://keys.example/jwks.json"
    assert [k.kid for k in await cache.keys(url)] == ["ec-1"]
    await cache.keys(url)
    await cache.keys(url, refresh=True)  # too soon after the fetch: no new request
    assert len(hits) == 1
    ticker.now += REFETCH_SECONDS + 1
    await cache.keys(url, refresh=True)
    assert len(hits) == 2
    ticker.now += 301
    await cache.keys(url)
    assert len(hits) == 3


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, text="{}"),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, text=json.dumps({"keys": [{"kty": "RSA", "kid": "x", "n": "AA", "e": "AQAB"}]})),
        httpx.Response(200, text="x" * (70 * 1024)),
    ],
)
async def test_cache_refuses_bad_answers(response: httpx.Response) -> None:
    cache = JwksCache(httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response)))
    with pytest.raises(JwksError):
        await cache.keys("https://keys.example/jwks.json")


async def test_cache_refuses_unreachable_and_plain_http_urls() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    cache = JwksCache(httpx.AsyncClient(transport=httpx.MockTransport(fail)))
    with pytest.raises(JwksError):
        await cache.keys("https://keys.example/jwks.json")
    with pytest.raises(JwksError):
        await cache.keys("http://keys.example/jwks.json")
