"""Patient identifiers from CX lists (PID-2/3/4, MRG-1): NHS number vs hospital numbers.

The NHS number is the national key, so it is only ever written when it passes the Modulus 11
check; a failing one is kept out and reported (by field, never by value). The first local record
number becomes the hospital number under the source's ``patient-id`` system — the key the
Encounter uses to name its patient and the one identity resolves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.codes import NHS_NUMBER_SYSTEM
from gateway.identity.nhs_number import InvalidNhsNumber, validate
from gateway.mappings.hl7v2 import tables
from gateway.mappings.hl7v2.fields import Rep
from gateway.mappings.source import SourceSystem
from gateway.types import JSON


@dataclass(frozen=True)
class PatientIdentifiers:
    identifiers: list[JSON]
    hospital_number: JSON | None  # {"system", "value"} of the primary hospital number
    nhs_number: str | None


def _is_nhs(cx: Rep) -> bool:
    authority = {cx.c(4, 1).upper(), cx.c(4, 2)} - {""}
    kind = cx.c(5).upper()
    return bool(authority & tables.NHS_AUTHORITIES) or (kind in tables.NHS_TYPES and not authority)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-") or "other"


def map_identifiers(
    labelled: Iterable[tuple[str, Rep]], source: SourceSystem, warnings: list[str], *, use: str | None = None
) -> PatientIdentifiers:
    """Map CX repetitions, each with the field it came from (for warnings), in priority order.

    `use` overrides Identifier.use (``old`` for the identifiers of a merged-away record).
    """
    identifiers: list[JSON] = []
    hospital: JSON | None = None
    nhs: str | None = None
    seen: set[tuple[str, str]] = set()
    for label, cx in labelled:
        value = cx.c(1)
        if not value:
            continue
        if _is_nhs(cx):
            try:
                number = validate(value)
            except InvalidNhsNumber as exc:
                warnings.append(f"{label}: NHS number not used ({exc})")
                continue
            if nhs is not None and number != nhs:
                warnings.append(f"{label}: a second, different NHS number was ignored")
                continue
            nhs = number
            identifier: JSON = {"use": use or "official", "system": NHS_NUMBER_SYSTEM, "value": number}
        else:
            kind = cx.c(5).upper()
            authority = cx.c(4, 1)
            if hospital is None and kind in tables.HOSPITAL_NUMBER_TYPES:
                system = source.identifier_system("patient-id")
                hospital = {"system": system, "value": value}
                default_use = "usual"
            else:
                system = source.identifier_system(f"patient-id/{_slug(authority or kind)}")
                default_use = "secondary"
            identifier = {"use": use or default_use}
            if kind:
                identifier["type"] = {"coding": [{"system": tables.V2_0203, "code": kind}]}
            identifier["system"] = system
            identifier["value"] = value
            if authority:
                identifier["assigner"] = {"display": authority}
        key = (identifier["system"], identifier["value"])
        if key not in seen:
            seen.add(key)
            identifiers.append(identifier)
    return PatientIdentifiers(identifiers, hospital, nhs)
