"""The client registry: who may ask for tokens, for which Organization, role and scopes, with which key.

A small repository over the `auth_client` table (SQLAlchemy Core, sync). Registration checks
everything up front (scopes parse, JWKS public and usable, URL https, one auth method), so the
token endpoint can trust what it reads back.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from gateway.auth.client_secrets import hash_secret
from gateway.auth.jwks import JwksError, check_jwks_url, parse_jwks
from gateway.auth.scopes import ScopeError, parse_scopes
from gateway.store.schema import auth_client, gateway_meta

PRIVATE_KEY_JWT = "private_key_jwt"
CLIENT_SECRET_BASIC = "client_secret_basic"
AUTH_METHODS = (PRIVATE_KEY_JWT, CLIENT_SECRET_BASIC)

# `gateway_meta` row changed in the same transaction as every registry change: the consent
# decision cache keys on it, so a client change is seen by every process at its commit.
CLIENT_GENERATION_KEY = "client_generation"

_ORGANIZATION = re.compile(r"^Organization/[A-Za-z0-9\-.]{1,64}$")
_ROLE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_PATIENT = re.compile(r"^(?:Patient/)?([A-Za-z0-9\-.]{1,64})$")


class ClientError(ValueError):
    """A registration the gateway refuses (bad organisation, scope, key, or a duplicate id)."""


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    organization: str
    role: str
    scopes: tuple[str, ...]
    auth_method: str
    jwks: str | None
    jwks_url: str | None
    secret_hash: str | None
    created_at: datetime
    disabled: bool
    patient: str | None = None  # the fixed patient context of `patient/` scopes (a Patient id)

    def public(self) -> dict[str, Any]:
        """The client as shown to operators (CLI output): never the secret hash or key material."""
        out: dict[str, Any] = {
            "client_id": self.client_id,
            "name": self.name,
            "organization": self.organization,
            "role": self.role,
            "scope": " ".join(self.scopes),
            "token_endpoint_auth_method": self.auth_method,
            "created": self.created_at.isoformat() + "Z",
            "disabled": self.disabled,
        }
        if self.jwks_url:
            out["jwks_uri"] = self.jwks_url
        if self.patient:
            out["patient"] = self.patient
        return out


_DISABLED = select(auth_client.c.disabled).where(auth_client.c.client_id == bindparam("client_id"))


def client_enabled(conn: Connection, client_id: str) -> bool:
    """Whether `client_id` is registered and not disabled, read on `conn` (in the caller's transaction)."""
    disabled = conn.execute(_DISABLED, {"client_id": client_id}).scalar_one_or_none()
    return disabled is not None and not disabled


def bump_client_generation(conn: Connection) -> None:
    """Give the client registry a new generation, inside the caller's transaction."""
    token = uuid.uuid4().hex
    meta = gateway_meta.c
    if conn.execute(update(gateway_meta).where(meta.key == CLIENT_GENERATION_KEY).values(value=token)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(gateway_meta.insert().values(key=CLIENT_GENERATION_KEY, value=token))
    except IntegrityError:  # another process created the row first: change it instead
        conn.execute(update(gateway_meta).where(meta.key == CLIENT_GENERATION_KEY).values(value=token))


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _from_row(row: Row[Any]) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        organization=row.organization,
        role=row.role,
        scopes=tuple(row.scopes.split()),
        auth_method=row.auth_method,
        jwks=row.jwks,
        jwks_url=row.jwks_url,
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        disabled=bool(row.disabled),
        patient=row.patient,
    )


def patient_id(patient: str) -> str:
    """`Patient/123` or `123` -> `123`. Raises ClientError for anything else."""
    match = _PATIENT.match(patient)
    if not match:
        raise ClientError("patient must be a Patient id or a reference such as Patient/123")
    return match.group(1)


def _check_patient(patient: str | None, scopes: list[str]) -> str | None:
    """Backend clients have no launch: `patient/` scopes need the patient fixed at registration."""
    wants_patient = any(s.startswith("patient/") for s in scopes)
    if patient is None:
        if wants_patient:
            raise ClientError("patient/ scopes need a patient context: register the client with a patient")
        return None
    if not wants_patient:
        raise ClientError("a patient context is only meaningful with patient/ scopes")
    return patient_id(patient)


def _check(name: str, organization: str, role: str, scopes: list[str], client_id: str) -> None:
    if not name.strip() or len(name) > 200:
        raise ClientError("name must be 1-200 characters")
    if not _ORGANIZATION.match(organization):
        raise ClientError("organization must be a reference such as Organization/trust-a")
    if not _ROLE.match(role):
        raise ClientError("role must be 1-64 characters of letters, digits, '-', '_', '.', ':'")
    if not _CLIENT_ID.match(client_id):
        raise ClientError("client_id must be 1-64 characters of letters, digits, '-', '_', '.', ':'")
    try:
        parsed = parse_scopes(scopes)
    except ScopeError as exc:
        raise ClientError(str(exc)) from exc
    if not parsed or len(parsed) != len(scopes):
        raise ClientError("scopes must be SMART resource scopes such as system/Patient.rs")


class ClientRepository:
    """Reads and writes registered clients."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(
        self,
        *,
        name: str,
        organization: str,
        role: str,
        scopes: str | list[str],
        jwks: str | None = None,
        jwks_url: str | None = None,
        secret: str | None = None,
        client_id: str | None = None,
        now: datetime | None = None,
        patient: str | None = None,
    ) -> Client:
        """Register a client with exactly one of `jwks` (JSON text), `jwks_url` or `secret` (hashed here).

        `patient` (an id or `Patient/<id>`) is the client's fixed patient context; it is required
        with `patient/` scopes and refused without them.

        Raises ClientError for an invalid registration or an existing client_id.
        """
        scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
        client_id = client_id or str(uuid.uuid4())
        _check(name, organization, role, scope_list, client_id)
        patient = _check_patient(patient, scope_list)
        if sum(x is not None for x in (jwks, jwks_url, secret)) != 1:
            raise ClientError("give exactly one of a JWKS, a JWKS URL or a secret")
        try:
            if jwks is not None:
                jwks = json.dumps(parse_jwks(jwks).as_dict(private=False), separators=(",", ":"))
            if jwks_url is not None:
                check_jwks_url(jwks_url)
        except JwksError as exc:
            raise ClientError(str(exc)) from exc
        values = {
            "client_id": client_id,
            "name": name.strip(),
            "organization": organization,
            "role": role,
            "scopes": " ".join(scope_list),
            "auth_method": CLIENT_SECRET_BASIC if secret is not None else PRIVATE_KEY_JWT,
            "jwks": jwks,
            "jwks_url": jwks_url,
            "secret_hash": hash_secret(secret) if secret is not None else None,
            "created_at": now or _utcnow(),
            "disabled": False,
            "patient": patient,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(auth_client.insert().values(**values))
                bump_client_generation(conn)
        except IntegrityError as exc:
            raise ClientError(f"client {client_id!r} already exists") from exc
        client = self.get(client_id)
        assert client is not None
        return client

    def get(self, client_id: str) -> Client | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(auth_client).where(auth_client.c.client_id == client_id)).first()
        return _from_row(row) if row is not None else None

    def list_clients(self, *, include_disabled: bool = True) -> list[Client]:
        query = select(auth_client).order_by(auth_client.c.organization, auth_client.c.name)
        if not include_disabled:
            query = query.where(auth_client.c.disabled.is_(False))
        with self._engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query)]

    def disable(self, client_id: str) -> bool:
        """Disable a client (its tokens stop working where the resource server checks `is_active`)."""
        with self._engine.begin() as conn:
            result = conn.execute(update(auth_client).where(auth_client.c.client_id == client_id).values(disabled=True))
            bump_client_generation(conn)
        return result.rowcount > 0

    def set_secret(self, client_id: str, secret: str) -> None:
        """Replace a secret-authenticated client's secret."""
        with self._engine.begin() as conn:
            conn.execute(
                update(auth_client)
                .where(auth_client.c.client_id == client_id, auth_client.c.auth_method == CLIENT_SECRET_BASIC)
                .values(secret_hash=hash_secret(secret))
            )
            bump_client_generation(conn)

    def is_active(self, client_id: str) -> bool:
        """Asked by an authenticated request that checks its client before any transaction of its own
        (the FHIR interactions ask `client_enabled` inside theirs): one statement on its own, so on
        PostgreSQL it runs in autocommit (no BEGIN/ROLLBACK round trips); it sees every committed change."""
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            return client_enabled(conn, client_id)
