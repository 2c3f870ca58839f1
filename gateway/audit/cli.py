"""`care-gateway audit --patient ID`: who saw (or tried to see) a person's record, and why.

Reads the stored AuditEvents through the `patient` search parameter, so a person can be told
which organisations and clients accessed their record, for what purpose and with what outcome.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.settings import Settings


def _who(agent: dict[str, Any]) -> str | None:
    who = agent.get("who") or {}
    value: str | None = who.get("identifier", {}).get("value") or who.get("display")
    return value


def summarise(event: dict[str, Any]) -> dict[str, Any]:
    who = [a for a in event.get("agent", []) if a.get("requestor")] or event.get("agent", [])[:1]
    agent = who[0] if who else {}
    purposes = [c.get("code") for cc in agent.get("purposeOfUse", []) for c in cc.get("coding", [])]
    return {
        "when": event.get("recorded"),
        "action": event.get("action"),
        "outcome": event.get("outcome"),
        "client": (agent.get("who") or {}).get("identifier", {}).get("value")
        or (agent.get("who") or {}).get("display"),
        "purpose": purposes,
        "type": (event.get("type") or {}).get("code"),
        "what": [(e.get("what") or {}).get("reference") for e in event.get("entity", []) if e.get("what")],
    }


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import build_services
    from gateway.fhir.search.parse import parse_search

    store = build_services(settings).store
    items = [("patient", f"Patient/{args.patient}"), ("_sort", "-date")]
    query = parse_search(
        store.registry, "AuditEvent", items, strict=True, default_count=args.limit, max_count=10000
    ).query
    with store.reader() as uow:
        rows = uow.search(query).rows
    for row in rows:
        print(json.dumps(summarise(row.json())))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "audit",
        help="who accessed a person's record",
        description="List the audit trail for one person: every read, search, write and refusal.",
    )
    parser.add_argument("--patient", required=True, help="Patient id")
    parser.add_argument("--limit", type=int, default=200, help="most recent N events (default 200)")
    parser.set_defaults(func=_audit)
