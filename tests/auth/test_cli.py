"""`care-gateway client add|list|disable`, and the ready-made demo clients printed at start-up."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.auth.cli import register_cli
from gateway.auth.client_secrets import verify_secret
from gateway.auth.clients import ClientRepository
from gateway.auth.demo import DEMO_CLIENTS, demo_clients
from gateway.settings import Settings


def run(argv: list[str], settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    parser = argparse.ArgumentParser(prog="care-gateway")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.handler(args, settings, engine)
    out = capsys.readouterr().out
    return code, json.loads(out) if out else None


ADD = ["client", "add", "--name", "Council", "--organization", "Organization/la-e09", "--role", "social-worker"]


def test_add_with_secret_prints_it_once(auth_settings: Settings, engine: Engine, capsys: Any) -> None:
    code, out = run(
        [*ADD, "--scope", "system/Patient.rs system/CarePlan.cu", "--secret"], auth_settings, engine, capsys
    )
    assert code == 0
    assert out["scope"] == "system/Patient.rs system/CarePlan.cu"
    assert out["token_endpoint_auth_method"] == "client_secret_basic"
    assert out["token_endpoint"] == "https://gw.example/auth/token"
    stored = ClientRepository(engine).get(out["client_id"])
    assert stored is not None and verify_secret(out["client_secret"], stored.secret_hash)


def test_add_with_jwks_file(
    auth_settings: Settings, engine: Engine, capsys: Any, tmp_path: Path, rsa_key: Any, kit: Any
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(kit.jwks(rsa_key))
    code, out = run(
        [*ADD, "--scope", "system/*.rs", "--jwks", str(path), "--client-id", "council-app"],
        auth_settings,
        engine,
        capsys,
    )
    assert code == 0
    assert out["client_id"] == "council-app" and out["token_endpoint_auth_method"] == "private_key_jwt"
    assert "client_secret" not in out


def test_add_with_jwks_url_and_repeated_scope(auth_settings: Settings, engine: Engine, capsys: Any) -> None:
    url = "https://keys.example/jwks.json"
    code, out = run(
        [*ADD, "--scope", "system/Patient.rs", "--scope", "system/Flag.rs", "--jwks-url", url],
        auth_settings,
        engine,
        capsys,
    )
    assert code == 0 and out["jwks_uri"] == url and out["scope"] == "system/Patient.rs system/Flag.rs"


def test_add_refuses_bad_input(auth_settings: Settings, engine: Engine, capsys: Any, tmp_path: Path) -> None:
    code, _ = run([*ADD, "--scope", "system/Patient.sr", "--secret"], auth_settings, engine, capsys)
    assert code == 2
    code, _ = run(
        [*ADD, "--scope", "system/Patient.rs", "--jwks", str(tmp_path / "missing.json")], auth_settings, engine, capsys
    )
    assert code == 2
    assert ClientRepository(engine).list_clients() == []
    with pytest.raises(SystemExit):  # --secret and --jwks-url together
        run(
            [*ADD, "--scope", "system/Patient.rs", "--secret", "--jwks-url", "https://k.example/j"],
            auth_settings,
            engine,
            capsys,
        )


def test_list_and_disable(auth_settings: Settings, engine: Engine, capsys: Any) -> None:
    _, added = run([*ADD, "--scope", "system/Patient.rs", "--secret"], auth_settings, engine, capsys)
    code, listed = run(["client", "list"], auth_settings, engine, capsys)
    assert code == 0 and [c["client_id"] for c in listed] == [added["client_id"]]
    assert all("client_secret" not in c for c in listed)
    code, out = run(["client", "disable", added["client_id"]], auth_settings, engine, capsys)
    assert code == 0 and out == {"client_id": added["client_id"], "disabled": True}
    _, active = run(["client", "list", "--active"], auth_settings, engine, capsys)
    assert active == []
    code, _ = run(["client", "disable", "nobody"], auth_settings, engine, capsys)
    assert code == 1


def test_demo_clients_are_idempotent(engine: Engine) -> None:
    repo = ClientRepository(engine)
    first = demo_clients(repo, seed=b"deployment-seed", token_endpoint="https://gw.example/auth/token")
    assert {c["organization"] for c in first} == {
        "Organization/trust-rxx",
        "Organization/la-e09",
        "Organization/community-rcc",
        "Organization/ooh-nx1",
        "Organization/case-mgmt",
    }
    assert len(first) == len(DEMO_CLIENTS) and all(c["client_secret"] for c in first)
    again = demo_clients(repo, seed=b"deployment-seed")
    assert [(c["client_id"], c["client_secret"]) for c in again] == [
        (c["client_id"], c["client_secret"]) for c in first
    ]
    assert len(repo.list_clients()) == len(DEMO_CLIENTS)
    for cred in first:
        stored = repo.get(cred["client_id"])
        assert stored is not None and verify_secret(cred["client_secret"], stored.secret_hash)


def test_demo_clients_rekey_on_new_seed_and_respect_disable(engine: Engine) -> None:
    repo = ClientRepository(engine)
    old = {c["client_id"]: c["client_secret"] for c in demo_clients(repo, seed=b"one")}
    repo.disable("demo-council")
    new = {c["client_id"]: c["client_secret"] for c in demo_clients(repo, seed=b"two")}
    assert "demo-council" not in new
    stored = repo.get("demo-hospital")
    assert stored is not None
    assert new["demo-hospital"] != old["demo-hospital"] and verify_secret(new["demo-hospital"], stored.secret_hash)


def test_add_with_a_patient_context(
    auth_settings: Settings, engine: Engine, capsys: Any, tmp_path: Path, rsa_key: Any, kit: Any
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(kit.jwks(rsa_key))
    code, out = run(
        [*ADD, "--scope", "patient/*.rs", "--jwks", str(path), "--patient", "Patient/p-1"],
        auth_settings,
        engine,
        capsys,
    )
    assert code == 0 and out["patient"] == "p-1"
    code, _ = run([*ADD, "--scope", "patient/*.rs", "--jwks", str(path)], auth_settings, engine, capsys)
    assert code == 2  # patient/ scopes without a patient are refused
