"""FHIR Bulk Data export (HL7 Bulk Data Access IG v2, "Flat FHIR"), consent-enforced.

Kick-off parameters (`params`), the work (`run`), durable background jobs (`jobs`), output
files (`files`), the completion manifest (`manifest`) and the HTTP face (`web`).
"""

from __future__ import annotations

from gateway.fhir.export.files import ExportFiles
from gateway.fhir.export.jobs import DONE, FAILED, QUEUED, RUNNING, ExportJob, ExportJobs
from gateway.fhir.export.params import GROUP, NDJSON, PATIENT, SYSTEM, ExportParams, parse_export_params
from gateway.fhir.export.run import ExportSpec, Output, export_types, run_export

__all__ = [
    "DONE",
    "FAILED",
    "GROUP",
    "NDJSON",
    "PATIENT",
    "QUEUED",
    "RUNNING",
    "SYSTEM",
    "ExportFiles",
    "ExportJob",
    "ExportJobs",
    "ExportParams",
    "ExportSpec",
    "Output",
    "export_types",
    "parse_export_params",
    "run_export",
]
