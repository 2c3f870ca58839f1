"""`care-gateway ward-list`: one ward's list on the command line, for a file upload or a check.

Runs as the gateway itself unless `--organization` names the receiving organisation, in which case
the list holds only what that organisation may see (decided by the configured guard, if any).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import orjson

from gateway.alerts.ward_list_push import write_atomic
from gateway.alerts.ward_list_service import (
    WardListConfig,
    current_ward_list,
    patient_visibility,
    receiver_repository,
    render,
    ward_entries,
    ward_label,
)
from gateway.auth.context import system_context
from gateway.fhir.repository import Repository
from gateway.settings import Settings

_FORMATS = {"csv": "csv", "fhir": "fhir-list", "fhir-list": "fhir-list", "fhir-group": "fhir-group"}


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print (or write to `--output`) the ward list; 0 on success."""
    from gateway.app import build_services

    services = build_services(settings)
    try:
        config = WardListConfig.from_sources(settings, services.extras)
        now = datetime.now(config.zone)
        guard = services.extras.get("guard")
        repo = (
            receiver_repository(services.store, args.organization, guard)
            if args.organization
            else Repository(services.store, system_context("ward-list"), guard)
        )
        with repo.reader() as uow:
            entries = ward_entries(uow, ward=args.ward, now=now)
            visible = patient_visibility(repo, uow, [e.patient_id for e in entries])
            rows = current_ward_list(uow, ward=args.ward, visible=visible, entries=entries)
        ward_id, ward_name = ward_label(args.ward, entries)
        doc, _ = render(
            rows,
            fmt=_FORMATS[args.format],
            ward_id=ward_id,
            ward_name=ward_name,
            organisation_ref=args.organization,
            source_ref=config.source,
            now=now,
        )
    finally:
        services.store.engine.dispose()
    text = doc if isinstance(doc, str) else orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    if args.output:
        write_atomic(Path(args.output), text)
        print(f"{len(rows)} rows for {ward_name} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ward-list",
        help="print a virtual ward's current list (CSV or FHIR List)",
        description="The current list of a virtual ward, as a receiving organisation may see it.",
    )
    parser.add_argument("--ward", required=True, help="the ward: its Location id (or Location/<id>)")
    parser.add_argument("--organization", default=None, help="receiving organisation, Organization/<id>")
    parser.add_argument("--format", choices=sorted(_FORMATS), default="csv", help="csv (default), fhir (= fhir-list)")
    parser.add_argument("--output", default=None, help="write to this file (atomically) instead of stdout")
    parser.set_defaults(func=run)
