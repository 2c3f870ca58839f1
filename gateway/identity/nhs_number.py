"""NHS number checks: format, Modulus 11 check digit, and placeholders that prove nothing.

A number can pass the checksum and still be a placeholder (9999999999, 1111111111…) that
sources type when they do not know the real one; those are never identity evidence.
"""

from __future__ import annotations

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


class InvalidNhsNumber(ValueError):
    """Raised with a reason a data owner can act on."""


def normalise(raw: str) -> str:
    """Strip the spaces and dashes people type (`943 476 5919`, `943-476-5919`)."""
    return "".join(ch for ch in raw.strip() if ch not in " -")


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None where no valid number exists."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_placeholder(number: str) -> bool:
    """All ten digits the same: valid by checksum for some, but never a real person's number."""
    return len(set(number)) == 1


def validate(raw: str) -> str:
    """Return the normalised number, or raise `InvalidNhsNumber` saying why it is refused."""
    number = normalise(raw)
    if len(number) != 10 or not number.isdigit():
        raise InvalidNhsNumber("NHS number must be 10 digits")
    expected = check_digit(number[:9])
    if expected is None or expected != int(number[9]):
        raise InvalidNhsNumber("NHS number fails the Modulus 11 check digit")
    if is_placeholder(number):
        raise InvalidNhsNumber("NHS number is a placeholder, not a real number")
    return number


def is_valid(raw: str) -> bool:
    try:
        validate(raw)
    except InvalidNhsNumber:
        return False
    return True


def with_check_digit(first_nine: str) -> str | None:
    """Complete nine digits into a valid number (for synthetic test data), or None."""
    digit = check_digit(first_nine)
    return None if digit is None else first_nine + str(digit)
