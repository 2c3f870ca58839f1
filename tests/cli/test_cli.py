"""The command line: every sub-command has --help; agreements and the audit trail work on a real database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser, main


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    names = sorted(sub.choices)  # type: ignore[attr-defined]
    for expected in ("serve", "db", "load", "ingest", "client", "agreement", "audit", "ward-list", "case-finding"):
        assert expected in names
    for name in names:
        out = subprocess.run(
            [sys.executable, "-m", "gateway.cli", name, "--help"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, (name, out.stderr)
        assert "usage:" in out.stdout


def test_agreement_add_list_retire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    args = [
        "agreement",
        "add",
        "--id",
        "isa-test",
        "--title",
        "Test",
        "--recipient",
        "Organization/a",
        "--purpose",
        "TREAT",
    ]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["id"] == "isa-test"
    assert main(["agreement", "list"]) == 0
    assert "isa-test" in capsys.readouterr().out
    assert main(["agreement", "retire", "isa-test"]) == 0
    assert main(["audit", "--patient", "nobody"]) == 0
