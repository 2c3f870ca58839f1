"""HL7 v2 composite data types -> FHIR data types (V2-to-FHIR IG datatype maps).

Each function takes one repetition and returns the FHIR JSON or None when nothing usable is there.
They never raise: a half-filled composite maps to what it holds.
"""

from __future__ import annotations

from gateway.mappings.hl7v2 import tables
from gateway.mappings.hl7v2.fields import Rep
from gateway.mappings.source import SourceSystem
from gateway.types import JSON


def _compact(data: JSON) -> JSON:
    """Drop empty values so resources carry no ``""``/``[]`` elements (invalid in FHIR)."""
    return {k: v for k, v in data.items() if v not in ("", None, [], {})}


def human_name(xpn: Rep) -> JSON | None:
    """XPN (v2.3+) or PN (v2.2): family^given^further given^suffix^prefix^degree^type."""
    given = [g for g in (xpn.c(2), xpn.c(3)) if g]
    name = _compact(
        {
            "use": tables.NAME_USE.get(xpn.c(7).upper()),
            "family": xpn.c(1),
            "given": given,
            "suffix": [s for s in (xpn.c(4), xpn.c(6)) if s],
            "prefix": [xpn.c(5)] if xpn.c(5) else [],
        }
    )
    return name if ("family" in name or "given" in name) else None


def address(xad: Rep) -> JSON | None:
    """XAD: street^other designation^city^state^postcode^country^type^…^county (XAD-9)."""
    kind = xad.c(7).upper()
    result = _compact(
        {
            "use": tables.ADDRESS_USE.get(kind),
            "type": tables.ADDRESS_TYPE.get(kind),
            "line": [line for line in (xad.c(1), xad.c(2)) if line],
            "city": xad.c(3),
            "district": xad.c(9),
            "state": xad.c(4),
            "postalCode": xad.c(5).upper(),
            "country": xad.c(6),
        }
    )
    return result if set(result) - {"use", "type"} else None


def contact_point(xtn: Rep, *, default_use: str | None) -> JSON | None:
    """XTN: v2.3 number^use^equipment^email^…^unformatted (XTN-12).

    An email lives in XTN-4 (use NET / equipment Internet); a phone number in XTN-12, else XTN-1,
    else the country/area/local parts.
    """
    use_code = xtn.c(2).upper()
    equipment = xtn.c(3).upper()
    if use_code == "NET" or equipment in ("INTERNET", "X.400"):
        value = xtn.c(4) or xtn.c(1)
        system = "email"
    else:
        value = xtn.c(12) or xtn.c(1) or " ".join(p for p in (xtn.c(5), xtn.c(6), xtn.c(7)) if p)
        system = tables.TELECOM_SYSTEM.get(equipment, "phone")
    if not value:
        return None
    use = "mobile" if equipment == "CP" else tables.TELECOM_USE.get(use_code, default_use)
    return _compact({"system": system, "value": value, "use": use})


def codeable_concept(cwe: Rep, *, system: str | None = None) -> JSON | None:
    """CE/CWE: code^text^coding system. `system` is used when the table is fixed by the field."""
    code, text = cwe.c(1), cwe.c(2)
    if not (code or text):
        return None
    coding_system = system or tables.CODING_SYSTEMS.get(cwe.c(3).upper())
    coding = _compact({"system": coding_system, "code": code, "display": text}) if code and coding_system else None
    return _compact({"coding": [coding] if coding else [], "text": text or (None if coding else code)})


def practitioner_reference(xcn: Rep, source: SourceSystem) -> JSON | None:
    """XCN: id^family^given^middle^suffix^prefix^…^assigning authority (XCN-9).

    A reference by identifier: the gateway does not hold Practitioner records for hospital staff.
    GMC/GMP numbers use the UK Core systems; anything else is the trust's own staff id.
    """
    ident, authority = xcn.c(1), xcn.c(9).upper()
    display = " ".join(p for p in (xcn.c(6), xcn.c(3), xcn.c(4), xcn.c(2)) if p)
    if not (ident or display):
        return None
    identifier = None
    if ident:
        system = tables.PRACTITIONER_SYSTEMS.get(authority) or source.identifier_system("practitioner-id")
        identifier = {"system": system, "value": ident}
    return _compact({"type": "Practitioner", "identifier": identifier, "display": display})


def location_reference(pl: Rep, source: SourceSystem) -> JSON | None:
    """PL: point of care (ward)^room^bed^facility^…^description (PL-9).

    Locations are referenced by an identifier built from facility/ward/room/bed, stable for as
    long as the trust keeps its ward codes.
    """
    ward, room, bed, facility = pl.c(1), pl.c(2), pl.c(3), pl.c(4)
    parts = [p for p in (facility, ward, room, bed) if p]
    if not parts:
        return None
    labels = [ward] + [f"{word} {value}" for word, value in (("room", room), ("bed", bed)) if value]
    display = pl.c(9) or ", ".join(label for label in labels if label) or facility
    return {
        "type": "Location",
        "identifier": {"system": source.identifier_system("location-id"), "value": "/".join(parts)},
        "display": display,
    }
