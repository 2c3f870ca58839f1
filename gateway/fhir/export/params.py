"""The kick-off request of a Bulk Data export, parsed once (https://hl7.org/fhir/uv/bulkdata/export.html).

Supported: `_outputFormat` (application/fhir+ndjson, and its aliases application/ndjson and
ndjson), `_since` (resources changed after this instant) and `_type` (comma-separated or repeated).
Any other parameter is refused (400) unless the client sent `Prefer: handling=lenient`, in which
case it is ignored and named in a warning. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from gateway.fhir.errors import FhirError, invalid, issue
from gateway.fhir.resource_types import SUPPORTED_TYPES
from gateway.store.search.kinds import date_range

SYSTEM, PATIENT, GROUP = "system", "patient", "group"
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
SUPPORTED_PARAMS = frozenset({"_outputFormat", "_since", "_type"})


@dataclass(frozen=True)
class ExportParams:
    """What to export; `types` None means every type the caller may read (at this level)."""

    types: tuple[str, ...] | None = None
    since: datetime | None = None  # naive UTC: resources last updated after this
    output_format: str = NDJSON
    warnings: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def with_types(self, types: Iterable[str]) -> ExportParams:
        """The same export, with the type list resolved for the caller."""
        return replace(self, types=tuple(types))

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "types": list(self.types) if self.types is not None else None,
                "since": self.since.isoformat() if self.since else None,
                "output_format": self.output_format,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> ExportParams:
        data = orjson.loads(text)
        types = data.get("types")
        since = data.get("since")
        return cls(
            types=tuple(types) if types is not None else None,
            since=datetime.fromisoformat(since) if since else None,
            output_format=data.get("output_format") or NDJSON,
        )


def _types(values: Iterable[str], *, lenient: bool, warnings: list[dict[str, Any]]) -> tuple[str, ...]:
    wanted: list[str] = []
    for value in values:
        for name in (t.strip() for t in value.split(",")):
            if not name:
                continue
            if name not in SUPPORTED_TYPES:
                if not lenient:
                    raise invalid(f"_type names a resource type this server does not export: {name!r}", ["_type"])
                warnings.append(issue("not-supported", f"_type {name!r} is not exported; ignored", severity="warning"))
                continue
            if name not in wanted:
                wanted.append(name)
    return tuple(wanted)


def parse_export_params(items: list[tuple[str, str]], *, lenient: bool) -> ExportParams:
    """The export parameters from the query (and Parameters body). Raises FhirError 400."""
    warnings: list[dict[str, Any]] = []
    for name, _ in items:
        if name not in SUPPORTED_PARAMS:
            if not lenient:
                raise FhirError(
                    "not-supported",
                    f"the export parameter {name!r} is not supported (send Prefer: handling=lenient to ignore it)",
                    status=400,
                )
            warnings.append(issue("not-supported", f"parameter {name!r} is not supported; ignored", severity="warning"))
    formats = [value for name, value in items if name == "_outputFormat"]
    output_format = NDJSON
    if formats:
        if len(formats) > 1 or formats[0] not in OUTPUT_FORMATS:
            raise invalid(f"_outputFormat must be one of {sorted(OUTPUT_FORMATS)}", ["_outputFormat"])
    since_values = [value for name, value in items if name == "_since"]
    since = None
    if since_values:
        if len(since_values) > 1:
            raise invalid("_since may be given once", ["_since"])
        try:
            since = date_range(since_values[0])[0]
        except ValueError as exc:
            raise invalid(f"_since must be a FHIR instant, not {since_values[0]!r}", ["_since"]) from exc
    type_values = [value for name, value in items if name == "_type"]
    types = _types(type_values, lenient=lenient, warnings=warnings) if type_values else None
    if types == ():
        raise invalid("_type names no resource type this server exports", ["_type"])
    return ExportParams(types=types, since=since, output_format=output_format, warnings=tuple(warnings))
