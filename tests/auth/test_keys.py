"""The gateway's signing key: created once in data_dir (0600), reused by every later load."""

from __future__ import annotations

import json
import stat

import pytest

from gateway.auth.keys import KEY_FILE, generate_signing_key, load_signing_key, signing_key_from_jwk
from gateway.settings import Settings


def test_key_file_is_created_once_and_reused(auth_settings: Settings) -> None:
    first = load_signing_key(auth_settings)
    path = auth_settings.data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signing_key(auth_settings).kid == first.kid
    assert "d" in json.loads(path.read_text())
    assert [p.name for p in auth_settings.data_dir.iterdir()] == [KEY_FILE]  # no temp files left


def test_key_from_setting_wins(auth_settings: Settings) -> None:
    configured = generate_signing_key()
    jwk = json.dumps(configured.key.as_dict(private=True))
    assert load_signing_key(auth_settings, jwk_json=jwk).kid == configured.kid
    assert not (auth_settings.data_dir / KEY_FILE).exists()


def test_public_jwks_has_no_private_part() -> None:
    jwks = generate_signing_key().public_jwks()
    (jwk,) = jwks["keys"]
    assert "d" not in jwk and jwk["alg"] == "ES256" and jwk["crv"] == "P-256"


def test_public_or_wrong_curve_keys_are_refused() -> None:
    key = generate_signing_key()
    with pytest.raises(ValueError):
        signing_key_from_jwk(key.key.as_dict(private=False))
