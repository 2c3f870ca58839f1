"""`care-gateway demo`: the guided walk-through (see gateway/demo/walkthrough.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="walk through the whole story on a throwaway gateway (under a minute)",
        description="Start a throwaway gateway (SQLite in a temporary directory), load the demo organisations, "
        "feed the council's, hospital's and community provider's files through the intake, raise an alert over "
        "MLLP, and show which organisation can see what.",
    )
    demo.add_argument("--data-dir", type=Path, default=None, help="an empty directory to keep the database in")
    demo.add_argument("--quiet", action="store_true", help="print nothing (for tests and scripts)")
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.demo.walkthrough import run_demo

    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    facts = run_demo(args.data_dir, quiet=args.quiet)
    return 0 if facts.case_manager_events else 1
