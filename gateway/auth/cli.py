"""`care-gateway client …`: register, list and disable API clients.

`register_cli(subparsers)` adds the commands; each parsed command carries `args.handler`, a
`CliHandler` the caller runs as `args.handler(args, settings, engine)` (exit code returned),
so this module never builds settings or engines itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from gateway.auth.client_secrets import new_secret
from gateway.auth.clients import ClientError, ClientRepository
from gateway.auth.tokens import token_url
from gateway.settings import Settings

CliHandler = Callable[[argparse.Namespace, Settings, Engine], int]


def _print(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _add(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    secret = new_secret() if args.secret else None
    try:
        jwks = Path(args.jwks).read_text() if args.jwks else None
        client = ClientRepository(engine).add(
            name=args.name,
            organization=args.organization,
            role=args.role,
            scopes=" ".join(args.scope),
            jwks=jwks,
            jwks_url=args.jwks_url,
            secret=secret,
            client_id=args.client_id,
            patient=args.patient,
        )
    except (ClientError, OSError) as exc:
        sys.stderr.write(f"client add: {exc}\n")
        return 2
    out = client.public()
    if secret is not None:
        out["client_secret"] = secret  # shown once; only its hash is stored
    out["token_endpoint"] = token_url(settings)
    _print(out)
    return 0


def _list(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    _print([c.public() for c in ClientRepository(engine).list_clients(include_disabled=not args.active)])
    return 0


def _disable(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    if not ClientRepository(engine).disable(args.client_id):
        sys.stderr.write(f"client disable: no client {args.client_id!r}\n")
        return 1
    _print({"client_id": args.client_id, "disabled": True})
    return 0


def register_cli(subparsers: Any) -> None:
    """Add `client add|list|disable` to an argparse subparsers object."""
    client = subparsers.add_parser("client", help="register, list and disable API clients")
    commands = client.add_subparsers(dest="client_command", required=True)

    add = commands.add_parser("add", help="register a client and print its JSON (with client_secret if asked)")
    add.add_argument("--name", required=True)
    add.add_argument("--organization", required=True, help="Organization/ID the client acts for")
    add.add_argument("--role", required=True, help="e.g. clinician, social-worker, case-manager")
    add.add_argument("--scope", required=True, action="append", help='SMART scopes, e.g. "system/Patient.rs"')
    add.add_argument("--client-id", help="choose the client_id (default: a new UUID)")
    add.add_argument("--patient", help="Patient/ID: the fixed patient context of patient/ scopes (required with them)")
    how = add.add_mutually_exclusive_group(required=True)
    how.add_argument("--jwks", metavar="FILE", help="public JWKS file (private_key_jwt)")
    how.add_argument("--jwks-url", metavar="URL", help="JWKS URL (private_key_jwt)")
    how.add_argument("--secret", action="store_true", help="generate a client secret (client_secret_basic)")
    add.set_defaults(handler=_add)

    lst = commands.add_parser("list", help="list registered clients as JSON")
    lst.add_argument("--active", action="store_true", help="leave out disabled clients")
    lst.set_defaults(handler=_list)

    disable = commands.add_parser("disable", help="disable a client; its tokens stop working")
    disable.add_argument("client_id")
    disable.set_defaults(handler=_disable)
