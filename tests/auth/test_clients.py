"""The client registry over the `auth_client` table, created by the real alembic migrations."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine

from gateway.auth.client_secrets import verify_secret
from gateway.auth.clients import CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT, ClientError, ClientRepository
from gateway.store.migrate import upgrade
from gateway.store.schema import metadata


def test_migration_matches_schema_for_auth_tables(database: Any) -> None:
    """Head of the migrations creates `auth_client` exactly as schema.py declares it, on both engines."""
    engine = create_engine(database.url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert [d for d in diff if "auth_client" in repr(d)] == []


SECRET = "council-intake-secret-not-in-any-hash"


def test_add_with_secret_stores_only_a_hash(engine: Engine) -> None:
    repo = ClientRepository(engine)
    client = repo.add(
        name="Council",
        organization="Organization/la-e09",
        role="social-worker",
        scopes="system/Patient.rs",
        secret=SECRET,
    )
    assert client.auth_method == CLIENT_SECRET_BASIC
    # A secret long enough that a random salt or digest cannot contain it by chance ("s3" did, ~2 %).
    assert client.secret_hash and SECRET not in client.secret_hash and verify_secret(SECRET, client.secret_hash)
    assert client.scopes == ("system/Patient.rs",)
    assert isinstance(client.created_at, datetime) and client.created_at.tzinfo is None
    assert repo.get(client.client_id) == client
    assert "secret_hash" not in client.public()


def test_add_with_jwks_keeps_only_public_keys(engine: Engine, rsa_key: Any, ec_key: Any, kit: Any) -> None:
    client = ClientRepository(engine).add(
        client_id="app-1",
        name="App",
        organization="Organization/case-mgmt",
        role="case-manager",
        scopes=["system/*.cruds"],
        jwks=kit.jwks(rsa_key, ec_key),
    )
    assert client.auth_method == PRIVATE_KEY_JWT
    assert client.jwks is not None
    assert sorted(k["kid"] for k in json.loads(client.jwks)["keys"]) == ["ec-1", "rsa-1"]


def _add(repo: ClientRepository, **changes: Any) -> None:
    values: dict[str, Any] = {
        "name": "X",
        "organization": "Organization/trust-rxx",
        "role": "clinician",
        "scopes": "system/Patient.rs",
        "secret": "s",
    }
    values.update(changes)
    repo.add(**values)


@pytest.mark.parametrize(
    "changes",
    [
        {"organization": "trust-rxx"},
        {"organization": "Patient/1"},
        {"role": "has space"},
        {"name": " "},
        {"scopes": "system/Patient.sr"},
        {"scopes": "openid"},
        {"scopes": ""},
        {"secret": None},  # no auth method at all
        {"jwks_url": "https://keys.example/jwks.json"},  # two auth methods
        {"secret": None, "jwks_url": "http://keys.example/jwks.json"},  # not https
        {"secret": None, "jwks": "not json"},
        {"secret": None, "jwks": json.dumps({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]})},
    ],
)
def test_add_refuses_bad_registrations(engine: Engine, changes: dict[str, Any]) -> None:
    with pytest.raises(ClientError):
        _add(ClientRepository(engine), **changes)


def test_duplicate_client_id_is_refused(engine: Engine) -> None:
    repo = ClientRepository(engine)
    _add(repo, client_id="dup")
    with pytest.raises(ClientError, match="already exists"):
        _add(repo, client_id="dup")


def test_list_and_disable(engine: Engine) -> None:
    repo = ClientRepository(engine)
    _add(repo, client_id="a", name="A")
    _add(repo, client_id="b", name="B")
    assert repo.is_active("a")
    assert repo.disable("a") is True
    assert repo.disable("missing") is False
    assert not repo.is_active("a") and not repo.is_active("missing")
    assert [c.client_id for c in repo.list_clients()] == ["a", "b"]
    assert [c.client_id for c in repo.list_clients(include_disabled=False)] == ["b"]


def test_set_secret_replaces_the_hash(engine: Engine) -> None:
    repo = ClientRepository(engine)
    _add(repo, client_id="c", secret="old")
    repo.set_secret("c", "new")
    stored = repo.get("c")
    assert stored is not None
    assert verify_secret("new", stored.secret_hash) and not verify_secret("old", stored.secret_hash)
