"""Where the shipped data files live (profiles/, fixtures/), whether run from a clone or installed."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = PROJECT_ROOT / "profiles"
FIXTURES_DIR = PROJECT_ROOT / "fixtures"
