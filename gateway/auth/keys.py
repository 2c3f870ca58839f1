"""The gateway's own token-signing key: ES256, created once and shared by every process.

Kept as a private JWK file (mode 0600) in `Settings.data_dir`, created atomically so that two
processes starting together end up with the same key; or handed in as JWK JSON from a setting
(deployments whose processes do not share a data directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

from gateway.settings import Settings

SIGNING_ALG = "ES256"
KEY_FILE = "auth-signing-key.jwk.json"


@dataclass(frozen=True)
class SigningKey:
    """A private P-256 key with a stable `kid` (its RFC 7638 thumbprint)."""

    key: ECKey

    @property
    def kid(self) -> str:
        return self.key.thumbprint()

    def public_jwks(self) -> dict[str, Any]:
        """The public half as a JWKS document (for anyone who wants to verify our tokens)."""
        jwk = dict(self.key.as_dict(private=False))
        jwk.update(kid=self.kid, alg=SIGNING_ALG, use="sig")
        return {"keys": [jwk]}


def signing_key_from_jwk(data: str | dict[str, Any]) -> SigningKey:
    """A SigningKey from private JWK JSON; raises ValueError unless it is a private P-256 EC key."""
    doc = json.loads(data) if isinstance(data, str) else data
    key = ECKey.import_key(doc)
    if key.curve_name != "P-256" or not key.is_private:
        raise ValueError("the token signing key must be a private EC P-256 JWK")
    return SigningKey(key)


def generate_signing_key() -> SigningKey:
    return SigningKey(ECKey.generate_key("P-256", private=True))


def _create_once(path: Path) -> None:
    """Write a fresh key to `path` unless it already exists; never overwrite a key another process made."""
    fresh = json.dumps(generate_signing_key().key.as_dict(private=True))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(fresh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(tmp, path)  # atomic create-if-absent
    finally:
        os.unlink(tmp)


def load_signing_key(settings: Settings, *, jwk_json: str | None = None) -> SigningKey:
    """The configured key (`jwk_json`), else the key file in data_dir, created on first use."""
    if jwk_json:
        return signing_key_from_jwk(jwk_json)
    path = settings.ensure_data_dir() / KEY_FILE
    if not path.exists():
        _create_once(path)
    return signing_key_from_jwk(path.read_text())
