"""Fixtures for the auth tests: real RSA / EC keys (cryptography), hand-made signed JWTs, a migrated
SQLite database, settings and a fixed clock.

JWTs are assembled and signed here with `cryptography` directly (not with the library under test),
so the tests can also build the malformed and malicious tokens that a JOSE library refuses to make.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sqlalchemy import Engine, create_engine

from gateway.auth.keys import SigningKey, generate_signing_key
from gateway.settings import Settings
from gateway.store.migrate import upgrade

BASE_URL = "https://gw.example"
TOKEN_URL = BASE_URL + "/auth/token"
FHIR_BASE = BASE_URL + "/fhir"
NOW = 1_750_000_000.0


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any] | str) -> bytes:
    payload = claims if isinstance(claims, str) else json.dumps(claims)
    return f"{b64u(json.dumps(header).encode())}.{b64u(payload.encode())}".encode()


@dataclass
class ClientKey:
    """A client's key pair; `sign` builds an assertion with whatever header it is told to use."""

    kid: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    alg: str

    def jwk(self) -> dict[str, Any]:
        pub = self.private.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            nums = pub.public_numbers()
            n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
            return {"kty": "RSA", "kid": self.kid, "n": b64u(n), "e": b64u(nums.e.to_bytes(3, "big"))}
        pt = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        crv = {"secp384r1": "P-384", "secp256r1": "P-256"}[pub.curve.name]
        return {
            "kty": "EC",
            "kid": self.kid,
            "crv": crv,
            "x": b64u(pt.x.to_bytes(size, "big")),
            "y": b64u(pt.y.to_bytes(size, "big")),
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any] | str, *, alg: str | None = None, **header: Any) -> str:
        alg = alg or self.alg
        head: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": self.kid, **header}
        head = {k: v for k, v in head.items() if v is not None}
        signing_input = compact(head, claims)
        return signing_input.decode() + "." + b64u(self._signature(signing_input, alg))

    def _signature(self, data: bytes, alg: str) -> bytes:
        bits = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, padding.PKCS1v15(), bits)
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(bits)))
        size = (self.private.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def jwks(*keys: ClientKey) -> str:
    return json.dumps({"keys": [k.jwk() for k in keys]})


def hs256_with(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = compact(header, claims)
    return signing_input.decode() + "." + b64u(hmac.new(secret, signing_input, hashlib.sha256).digest())


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return compact(header, claims).decode() + "." + signature


def assertion_claims(client_id: str, now: float = NOW, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(now) + 240,
        "iat": int(now),
        "jti": str(uuid.uuid4()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


class JwtKit:
    """The helpers above as one fixture (test modules cannot import conftest under importlib mode)."""

    base_url = BASE_URL
    token_url = TOKEN_URL
    fhir_base = FHIR_BASE
    now = NOW
    b64u = staticmethod(b64u)
    compact = staticmethod(compact)
    jwks = staticmethod(jwks)
    hs256_with = staticmethod(hs256_with)
    unsigned = staticmethod(unsigned)
    claims = staticmethod(assertion_claims)
    key_class = ClientKey


@pytest.fixture(scope="session")
def kit() -> JwtKit:
    return JwtKit()


@pytest.fixture(scope="session")
def rsa_key() -> ClientKey:
    return ClientKey("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS384")


@pytest.fixture(scope="session")
def ec_key() -> ClientKey:
    return ClientKey("ec-1", ec.generate_private_key(ec.SECP384R1()), "ES384")


@pytest.fixture(scope="session")
def attacker_key() -> ClientKey:
    """Not registered anywhere; uses the victim's kid to look like a registered key."""
    return ClientKey("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS384")


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return generate_signing_key()


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file brought to head by the real migrations; each test gets a copy."""
    path = tmp_path_factory.mktemp("auth-db") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def engine(tmp_path: Path, migrated_db: Path) -> Iterator[Engine]:
    path = tmp_path / "gateway.db"
    shutil.copy(migrated_db, path)
    eng = create_engine(f"sqlite:///{path}")
    yield eng
    eng.dispose()


@pytest.fixture
def auth_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", base_url=BASE_URL, log_json=True, log_level="WARNING")


@pytest.fixture
def clock() -> Clock:
    return Clock()
