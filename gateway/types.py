"""Type aliases shared across the package."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
"""A FHIR resource (or any JSON object) as parsed from the wire."""
