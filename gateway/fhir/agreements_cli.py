"""`care-gateway agreement add|list|retire`: information-sharing agreements managed as data.

Agreements are `Basic` resources (see gateway/consent/agreements.py); the CLI writes them
through the store exactly as `PUT /fhir/Basic/<id>` would, so the API and CLI stay one path.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.consent.agreements import AgreementError, build_agreement, parse_agreement
from gateway.fhir.validate import validate_resource
from gateway.settings import Settings


def _services(settings: Settings) -> Any:
    from gateway.app import build_services

    return build_services(settings)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    resource = build_agreement(
        id=args.id,
        recipients=args.recipient,
        purposes=args.purpose,
        sources=args.source or (),
        resource_types=args.type or (),
        break_glass=args.break_glass,
        title=args.title,
    )
    try:
        parse_agreement(resource)
    except AgreementError as exc:
        print("agreement refused:", "; ".join(exc.problems))
        return 2
    validate_resource(resource)
    store = _services(settings).store
    with store.writer() as uow:
        stored, _ = uow.update(resource)
    print(json.dumps({"id": stored.id, "version": stored.version_id, "title": args.title}))
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.fhir.search.parse import parse_search

    store = _services(settings).store
    items = [("code", "https://care-gateway.example.org/fhir/CodeSystem/policy-kind|information-sharing-agreement")]
    query = parse_search(store.registry, "Basic", items, strict=True, default_count=1000, max_count=1000).query
    with store.reader() as uow:
        rows = uow.search(query).rows
    for row in rows:
        try:
            agreement = parse_agreement(row.json())
            print(json.dumps({"id": row.id, "agreement": str(agreement)}))
        except AgreementError as exc:
            print(json.dumps({"id": row.id, "unusable": exc.problems}))
    return 0


def _retire(args: argparse.Namespace, settings: Settings) -> int:
    store = _services(settings).store
    with store.writer() as uow:
        current = uow.read("Basic", args.id).json()
        for ext in current.get("extension", []):
            if ext.get("url", "").endswith("isa-status"):
                ext["valueCode"] = "retired"
        uow.update(current)
    print(json.dumps({"id": args.id, "status": "retired"}))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "agreement",
        help="information-sharing agreements between organisations",
        description="Add, list or retire information-sharing agreements (stored as FHIR Basic resources).",
    )
    actions = parser.add_subparsers(dest="agreement_action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add or replace an agreement", description="Add or replace an agreement.")
    add.add_argument("--id", required=True, help="agreement id (Basic/<id>)")
    add.add_argument("--title", required=True, help="human-readable name")
    add.add_argument("--recipient", action="append", required=True, help="Organization/<id> that may see data")
    add.add_argument("--purpose", action="append", required=True, help="purpose of use code, e.g. TREAT")
    add.add_argument("--source", action="append", help="Organization/<id> whose data is shared (default: any)")
    add.add_argument("--type", action="append", help="resource type shared (default: all)")
    add.add_argument("--break-glass", action="store_true", help="allow break-glass access under this agreement")
    add.set_defaults(func=_add)
    lst = actions.add_parser("list", help="list agreements", description="List the stored agreements.")
    lst.set_defaults(func=_list)
    retire = actions.add_parser("retire", help="retire an agreement", description="Mark an agreement retired.")
    retire.add_argument("id", help="agreement id")
    retire.set_defaults(func=_retire)
