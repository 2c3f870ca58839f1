"""HL7 v2 table values -> FHIR codes: the one place these mappings live.

Sources: the HL7 V2-to-FHIR IG ConceptMaps (tables 0001, 0004, 0190, 0200, 0201) and UK Core
identifier systems. Where the IG leaves a code unmapped and the gateway needs a value, the choice
is noted beside it.
"""

from __future__ import annotations

from gateway.codes import V3_ACT_CODE

V2_0003 = "http://terminology.hl7.org/CodeSystem/v2-0003"  # event type
V2_0007 = "http://terminology.hl7.org/CodeSystem/v2-0007"  # admission type
V2_0023 = "http://terminology.hl7.org/CodeSystem/v2-0023"  # admit source
V2_0069 = "http://terminology.hl7.org/CodeSystem/v2-0069"  # hospital service
V2_0092 = "http://terminology.hl7.org/CodeSystem/v2-0092"  # re-admission indicator
V2_0112 = "http://terminology.hl7.org/CodeSystem/v2-0112"  # discharge disposition
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier type
V3_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
PROVENANCE_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
GMC_NUMBER_SYSTEM = "https://fhir.hl7.org.uk/Id/gmc-number"
GMP_NUMBER_SYSTEM = "https://fhir.hl7.org.uk/Id/gmp-number"

# Table 0001 administrative sex -> Patient.gender.
GENDER: dict[str, str] = {
    "F": "female",
    "M": "male",
    "O": "other",
    "U": "unknown",
    "A": "other",
    "N": "other",
}

# Table 0004 patient class -> Encounter.class (v3 ActCode). R -> AMB is the gateway's choice
# (a recurring patient attends; the IG leaves R unmapped). N means "no visit".
ENCOUNTER_CLASS: dict[str, tuple[str, str]] = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
}
ENCOUNTER_CLASS_SYSTEM = V3_ACT_CODE
NO_VISIT_CLASS = "N"

# Table 0200 name type -> HumanName.use.
NAME_USE: dict[str, str] = {
    "L": "official",
    "R": "official",
    "D": "usual",
    "M": "maiden",
    "N": "nickname",
    "MSK": "anonymous",
    "TEMP": "temp",
    "NAV": "temp",
    "BAD": "old",
}

# Table 0190 address type -> Address.use / Address.type. H/B/C/BA are the gateway's choices
# (the IG maps only M and SH), following their plain meaning.
ADDRESS_USE: dict[str, str] = {"H": "home", "P": "home", "B": "work", "O": "work", "C": "temp", "BA": "old"}
ADDRESS_TYPE: dict[str, str] = {"M": "postal", "SH": "postal"}

# Table 0201 telecom use -> ContactPoint.use; table 0202 equipment type -> ContactPoint.system.
TELECOM_USE: dict[str, str] = {"PRN": "home", "ORN": "home", "VHN": "home", "WPN": "work", "PRS": "mobile"}
TELECOM_SYSTEM: dict[str, str] = {
    "PH": "phone",
    "CP": "phone",
    "FX": "fax",
    "BP": "pager",
    "INTERNET": "email",
    "X.400": "email",
}

# Identifier types (table 0203) that name a patient's record number at the sending trust.
HOSPITAL_NUMBER_TYPES = frozenset({"MR", "PI", "PT", "PN", ""})
# NHS number: UK senders use ^^^NHS^NH; Epic sends ^^^NHS^HN. The OID is the NHS number root.
NHS_AUTHORITIES = frozenset({"NHS", "2.16.840.1.113883.2.1.4.1"})
NHS_TYPES = frozenset({"NH", "HN", "NHS"})

# Practitioner identifier assigning authorities (XCN-9) -> UK Core identifier systems.
PRACTITIONER_SYSTEMS: dict[str, str] = {"GMC": GMC_NUMBER_SYSTEM, "GMP": GMP_NUMBER_SYSTEM}

# PV1 doctor fields -> Encounter.participant.type (v3 ParticipationType).
PARTICIPANTS: tuple[tuple[int, str, str], ...] = (
    (7, "ATND", "attender"),
    (8, "REF", "referrer"),
    (9, "CON", "consultant"),
    (17, "ADM", "admitter"),
)

# CWE-3 coding system names -> FHIR system URIs.
CODING_SYSTEMS: dict[str, str] = {
    "SCT": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
}
