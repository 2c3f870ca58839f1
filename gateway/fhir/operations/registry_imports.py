"""Imports the record operations so they register in `OPERATIONS` (routes.py imports this module)."""

from __future__ import annotations

from gateway.fhir.operations import episodeofcare_everything as _episodeofcare_everything  # noqa: F401
from gateway.fhir.operations import patient_everything as _patient_everything  # noqa: F401
