"""NHS number checks (gateway/identity/nhs_number.py): Modulus 11 and placeholders."""

from __future__ import annotations

import pytest

from gateway.identity.nhs_number import InvalidNhsNumber, is_valid, validate, with_check_digit


def test_valid_number_with_spaces_is_normalised() -> None:
    number = with_check_digit("999000123")
    assert number is not None
    assert validate(f"{number[:3]} {number[3:6]} {number[6:]}") == number


def test_wrong_check_digit_is_refused() -> None:
    number = with_check_digit("999000123")
    assert number is not None
    wrong = number[:9] + str((int(number[9]) + 1) % 10)
    with pytest.raises(InvalidNhsNumber, match="check digit"):
        validate(wrong)


@pytest.mark.parametrize("placeholder", ["9999999999", "1111111111", "0000000000"])
def test_placeholders_are_never_valid(placeholder: str) -> None:
    assert not is_valid(placeholder)
