"""Sub-commands that other stages add to `care-gateway` (each a `register(subparsers)` function)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _all() -> list[Register]:
    from gateway.alerts.ward_list_cli import register as ward_list
    from gateway.audit.cli import register as audit
    from gateway.auth.cli import register_cli as client
    from gateway.demo.cli import register as demo
    from gateway.fhir.agreements_cli import register as agreement
    from gateway.intake.cli import register_ingest, register_quarantine
    from gateway.record.cli import register as record

    return [register_ingest, register_quarantine, client, agreement, audit, ward_list, record, demo]


EXTENSIONS: list[Register] = _all()
