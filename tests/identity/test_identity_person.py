"""Normalisation of demographics into a PersonRecord (gateway/identity/person.py)."""

from __future__ import annotations

from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, with_check_digit
from gateway.identity.person import (
    PersonRecord,
    canonical_forenames,
    family_parts,
    fold,
    given_tokens,
    normalise_postcode,
    normalise_sex,
    parse_birth_date,
)

NHS = with_check_digit("999000123") or ""


def test_fold_removes_case_accents_and_apostrophes() -> None:
    assert fold("Zoë") == "zoe"
    assert fold("O'Brien") == "obrien"
    assert fold("Ó Súilleabháin") == "o suilleabhain"
    assert fold("Müller") == "muller"
    assert fold("Strauß") == "strauss"


def test_double_barrelled_surnames_split_into_parts_however_written() -> None:
    assert family_parts("Smith-Jones") == ("smith", "jones")
    assert family_parts("SMITH  JONES") == ("smith", "jones")
    assert family_parts("Smith–Jones") == ("smith", "jones")  # en dash


def test_hyphenated_forename_stays_one_name() -> None:
    assert given_tokens(["Jean-Paul", "Mary Anne"]) == ("jeanpaul", "mary", "anne")


def test_nicknames_map_to_canonical_forenames() -> None:
    assert "william" in canonical_forenames("bill")
    assert canonical_forenames("bert") >= {"albert", "herbert", "robert"}
    assert canonical_forenames("william") == frozenset({"william"})
    assert canonical_forenames("zebedee") == frozenset({"zebedee"})


def test_postcodes_are_normalised_or_dropped() -> None:
    assert normalise_postcode("sw1a1aa") == "SW1A 1AA"
    assert normalise_postcode("  ls1   4ap ") == "LS1 4AP"
    assert normalise_postcode("M1 1AE") == "M1 1AE"
    assert normalise_postcode("not a postcode") is None
    assert normalise_postcode("12345") is None


def test_birth_dates_keep_their_precision() -> None:
    assert parse_birth_date("1950-03-04") == (1950, 3, 4)
    assert parse_birth_date("1950-03") == (1950, 3, None)
    assert parse_birth_date("1950") == (1950, None, None)
    assert parse_birth_date("1950-13-01") == (1950, None, None)
    assert parse_birth_date("garbage") == (None, None, None)
    assert parse_birth_date(None) == (None, None, None)


def test_sex_unknown_is_not_evidence() -> None:
    assert normalise_sex("Female") == "female"
    assert normalise_sex("M") == "male"
    assert normalise_sex("unknown") is None
    assert normalise_sex(None) is None


def _patient(**extra: object) -> dict[str, object]:
    patient: dict[str, object] = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {"system": NHS_NUMBER_SYSTEM, "value": f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}"},
            {"system": "https://care-gateway.example.org/source/pas/patient-id", "value": "H123"},
        ],
        "name": [
            {"use": "old", "family": "Maiden", "given": ["Jo"]},
            {"use": "official", "family": "Smith-Jones", "given": ["Élodie", "Mary"]},
        ],
        "gender": "female",
        "birthDate": "1950-03-04",
        "address": [
            {"use": "old", "postalCode": "LS1 1AA", "period": {"end": "2019-01-01"}},
            {"use": "home", "postalCode": "ls2 9jt"},
        ],
    }
    patient.update(extra)
    return patient


def test_from_patient_reads_normalised_demographics() -> None:
    record = PersonRecord.from_patient(_patient())
    assert record.nhs_number == NHS
    assert record.given == ("elodie", "mary")
    assert record.family == "smith jones"
    assert record.family_parts == ("smith", "jones")
    assert record.family_key == "smithjones"
    assert (record.birth_year, record.birth_month, record.birth_day) == (1950, 3, 4)
    assert record.birth_date_text == "19500304"
    assert record.sex == "female"
    assert record.postcodes == ("LS2 9JT", "LS1 1AA")  # current first, old kept
    assert record.identifiers == (("https://care-gateway.example.org/source/pas/patient-id", "H123"),)
    assert record.resource_id == "p1"


def test_placeholder_and_invalid_nhs_numbers_are_dropped() -> None:
    for bad in ("9999999999", "1111111111", "1234567890", "99912"):
        patient = _patient(identifier=[{"system": NHS_NUMBER_SYSTEM, "value": bad}])
        assert PersonRecord.from_patient(patient).nhs_number is None


def test_name_text_only_is_split() -> None:
    record = PersonRecord.from_patient({"resourceType": "Patient", "name": [{"text": "Mary Ann Evans"}]})
    assert record.given == ("mary", "ann")
    assert record.family == "evans"


def test_empty_patient_gives_empty_record() -> None:
    record = PersonRecord.from_patient({"resourceType": "Patient"})
    assert record.given == () and record.family == "" and record.postcodes == ()
    assert record.birth_year is None and record.nhs_number is None
