"""`care-gateway ingest social-care|community FILE…` and `care-gateway quarantine list|replay ID`.

Register with `gateway.cli_extensions.EXTENSIONS` (`register_ingest`, `register_quarantine`).
Reports go to stdout as JSON (one object per file); progress goes to stderr so stdout stays clean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Literal, TextIO

from gateway.intake.base import SourceIntake
from gateway.mappings.source import SourceSystem
from gateway.settings import Settings


class ProgressBar:
    """A one-line text bar on a terminal stream, redrawn in place."""

    def __init__(self, label: str, stream: TextIO, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width

    def __call__(self, done: int, total: int) -> None:
        filled = self.width if total == 0 else self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} rows")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _named_source(intake: SourceIntake, name: str | None) -> SourceSystem | Literal[False] | None:
    """The source `--source` names (None: the intake's default); False, reported, when unknown."""
    if not name:
        return None
    source = intake.sources.get(name)
    if source is None:
        print(f"unknown source {name!r}", file=sys.stderr)
        return False
    return source


def _ingest_social_care(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import build_services
    from gateway.intake.web import social_care_intake_of
    from gateway.mappings.social_care import UnreadableExtract

    services = build_services(settings)
    intake = social_care_intake_of(services)
    source = _named_source(intake, args.source)
    if source is False:
        return 2
    failed = False
    for path in args.files:
        file = Path(path)
        try:
            report = intake.ingest(
                file.read_bytes(), filename=file.name, source=source, progress=ProgressBar(file.name, sys.stderr)
            )
        except UnreadableExtract as exc:
            print(f"{file.name}: unreadable, quarantined: {exc}", file=sys.stderr)
            failed = True
            continue
        if args.report_dir:
            Path(args.report_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.report_dir) / f"{file.name}.report.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report if args.rows else {k: v for k, v in report.items() if k != "rows"}))
        totals = report["totals"]
        print(
            f"{file.name}: {totals['rows']} rows, {totals['accepted']} accepted, {totals['rejected']} rejected",
            file=sys.stderr,
        )
    services.store.engine.dispose()
    return 1 if failed else 0


def _ingest_community(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import build_services
    from gateway.intake.web import community_intake_of
    from gateway.mappings.community import UnreadableRecords

    services = build_services(settings)
    try:
        intake = community_intake_of(services)
        source = _named_source(intake, args.source)
        if source is False:
            return 2
        failed = False
        for path in args.files:
            file = Path(path)
            try:
                report = intake.ingest(file.read_bytes(), filename=file.name, source=source)
            except UnreadableRecords as exc:
                print(f"{file.name}: unreadable, quarantined: {exc}", file=sys.stderr)
                failed = True
                continue
            print(json.dumps(report if args.rows else {k: v for k, v in report.items() if k != "records"}))
            totals = report["totals"]
            print(
                f"{file.name}: {totals['records']} records, {totals['accepted']} accepted, "
                f"{totals['rejected']} rejected",
                file=sys.stderr,
            )
        return 1 if failed else 0
    finally:
        services.store.engine.dispose()


def register_ingest(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingest = subparsers.add_parser("ingest", help="load source extracts")
    kinds = ingest.add_subparsers(dest="ingest_kind", required=True)
    care = kinds.add_parser("social-care", help="adult social care CLD extracts (CSV or JSON)")
    care.add_argument("files", nargs="+", metavar="FILE")
    care.add_argument("--source", help="source id of the council (default: the only social-care source)")
    care.add_argument("--rows", action="store_true", help="print every row's result, not just the totals")
    care.add_argument("--report-dir", help="also write each file's full report as JSON here")
    care.set_defaults(func=_ingest_social_care)
    community = kinds.add_parser("community", help="community-provider JSON records or FHIR Bundles")
    community.add_argument("files", nargs="+", metavar="FILE")
    community.add_argument("--source", help="source id of the provider (default: the only community source)")
    community.add_argument("--rows", action="store_true", help="print every record's result, not just the totals")
    community.set_defaults(func=_ingest_community)


def _quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import build_services
    from gateway.intake.receipts import list_quarantine
    from gateway.intake.web import hl7_intake_of
    from gateway.mappings.hl7v2 import AdtMappingError

    services = build_services(settings)
    try:
        if args.action == "list":
            with services.store.reader() as uow:
                entries = list_quarantine(uow.conn, status=None if args.all else "open", limit=args.limit)
            for e in entries:
                line = {
                    "id": e.id,
                    "source_id": e.source_id,
                    "kind": e.kind,
                    "status": e.status,
                    "received_at": e.received_at.isoformat(),
                    "bytes": len(e.raw),
                    "reason": e.reason,
                }
                print(json.dumps(line))
            return 0
        if args.id is None:
            print("quarantine replay needs an ID", file=sys.stderr)
            return 2
        try:
            ack = hl7_intake_of(services).replay(args.id)
        except KeyError:
            print(f"no HL7 v2 quarantine entry {args.id}", file=sys.stderr)
            return 2
        except (ValueError, AdtMappingError) as exc:
            print(f"not replayed: {exc}", file=sys.stderr)
            return 1
        print(ack.replace(b"\r", b"\n").decode("latin-1"))
        return 0
    finally:
        services.store.engine.dispose()


def register_quarantine(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    q = subparsers.add_parser("quarantine", help="inspect and replay input that could not be applied")
    q.add_argument("action", choices=["list", "replay"])
    q.add_argument("id", nargs="?", type=int)
    q.add_argument("--all", action="store_true", help="list replayed entries too")
    q.add_argument("--limit", type=int, default=100)
    q.set_defaults(func=_quarantine)
