"""`care-gateway case-finding | caseloads | rounds`: the case-management worklists in a terminal.

Runs as the gateway itself (no caller, no consent filter): it is an operator's tool on the
gateway host. Add `register` to `gateway.cli_extensions.EXTENSIONS` to expose the commands.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from gateway.record.case_finding import DEFAULT_WEIGHTS
from gateway.record.caseload import CaseloadPolicy
from gateway.record.worklists import load_caseloads, load_round_list, run_case_finding
from gateway.settings import Settings
from gateway.store.api import Store


def open_store(settings: Settings) -> Store:
    from gateway.store import migrate
    from gateway.store.engine import make_engine

    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    migrate.upgrade(engine)
    return Store(engine, fhir_base=settings.fhir_base)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table (no dependency, copes with an empty list)."""
    cells = [[str(h) for h in headers], *[[("" if v is None else str(v)) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _emit(args: argparse.Namespace, data: Any, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print(json.dumps(data, indent=2) if args.format == "json" else table(headers, rows))


def _case_finding(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    try:
        with store.writer() as uow:
            result = run_case_finding(uow, now=datetime.now(UTC), threshold=args.threshold)
    finally:
        store.engine.dispose()
    data = [
        {"rank": i.rank, "patient": i.patient_id, "points": i.points, "band": i.band, "reasons": list(i.reasons)}
        for i in result.worklist
    ]
    rows = [(i.rank, i.patient_id, i.points, i.band, "; ".join(i.reasons)) for i in result.worklist]
    _emit(args, data, ("rank", "patient", "points", "band", "reasons"), rows)
    if args.format != "json":
        print(
            f"\n{len(result.scores)} people scored, {result.written} RiskAssessment(s) written; "
            "the list ranks people for a clinician's judgement, it does not decide."
        )
    return 0


def _caseloads(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    try:
        with store.reader() as uow:
            loads = load_caseloads(uow, CaseloadPolicy(limit=args.limit, high_risk_share=args.high_risk_share))
    finally:
        store.engine.dispose()
    data = [
        {
            "careManager": c.care_manager,
            "active": c.active,
            "highRisk": c.high_risk,
            "warnings": list(c.warnings),
        }
        for c in loads
    ]
    rows = [
        (
            c.care_manager,
            c.care_manager_display,
            c.active,
            c.high_risk,
            f"{c.high_risk_share:.0%}",
            ", ".join(c.warnings),
        )
        for c in loads
    ]
    _emit(args, data, ("care manager", "name", "active", "high risk", "share", "warnings"), rows)
    return 0


def _rounds(args: argparse.Namespace, settings: Settings) -> int:
    try:
        today = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    except ValueError:
        print(f"--date must be YYYY-MM-DD, not {args.date!r}")
        return 2
    store = open_store(settings)
    try:
        with store.reader() as uow:
            items = load_round_list(uow, ward_id=args.ward, today=today)
    finally:
        store.engine.dispose()
    data = [
        {
            "patient": i.patient_id,
            "episode": i.episode_id,
            "frequency": i.frequency,
            "lastRound": i.last_round.isoformat() if i.last_round else None,
            "due": i.due.isoformat(),
            "overdueDays": i.overdue_days,
        }
        for i in items
    ]
    rows = [(i.patient_id, i.frequency, i.last_round, i.due, i.overdue_days) for i in items]
    _emit(args, data, ("patient", "frequency", "last round", "due", "overdue days"), rows)
    return 0


def _format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "json"], default="table", help="output format (default table)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    finding = sub.add_parser(
        "case-finding",
        help="score everyone and list people to consider for case management",
        description="Score everyone (writing a RiskAssessment each) and list those at or above the "
        "threshold who are not yet case-managed. It ranks for a clinician's judgement; it does not decide.",
    )
    finding.add_argument("--threshold", type=int, default=DEFAULT_WEIGHTS.high_from, help="minimum points")
    _format(finding)
    finding.set_defaults(func=_case_finding)

    loads = sub.add_parser("caseloads", help="caseload per case manager, with warnings")
    loads.add_argument("--limit", type=int, default=CaseloadPolicy().limit, help="people per case manager (50)")
    loads.add_argument(
        "--high-risk-share", type=float, default=CaseloadPolicy().high_risk_share, help="high-risk share (0.15)"
    )
    _format(loads)
    loads.set_defaults(func=_caseloads)

    rounds = sub.add_parser("rounds", help="the day's virtual ward round list")
    rounds.add_argument("--ward", required=True, help="ward id (the virtual ward Location id)")
    rounds.add_argument("--date", default=None, help="YYYY-MM-DD (default today, UTC)")
    _format(rounds)
    rounds.set_defaults(func=_rounds)
