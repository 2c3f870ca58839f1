"""Check one CLD row and turn it into a typed record, or say exactly what is wrong with it.

Every fault names its column so the council can fix the row: an invalid or placeholder NHS
number, an unparseable date, a missing mandatory field, a value outside a defined list. A blank
NHS number is not a fault: the person is then known by LA_Person_Unique_Identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from gateway.identity.nhs_number import InvalidNhsNumber, validate
from gateway.mappings.social_care import columns as c
from gateway.mappings.social_care.readers import SourceRow
from gateway.mappings.social_care.values import Concept, defined_list


@dataclass(frozen=True)
class Reason:
    column: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.column}: {self.message}" if self.column else self.message


@dataclass(frozen=True)
class CldRecord:
    row_number: int
    la_code: str
    person_id: str
    nhs_number: str | None
    gp_practice: str | None
    birth_date: str | None  # YYYY-MM-DD, or YYYY-MM from Der_Birth_Year/Month
    date_of_death: date | None
    postcode: str | None
    event_start: date
    event_end: date | None
    planned_units: Decimal | None
    unit_cost: Decimal | None
    provider_cqc_location: str | None
    worker_id: str | None
    worker_name: str | None
    cared_for_id: str | None
    coded: dict[str, Concept]  # CLD column → resolved defined value, for non-blank coded cells

    def code(self, column: str) -> Concept | None:
        return self.coded.get(column)

    @property
    def client_type(self) -> Concept:
        return self.coded[c.CLIENT_TYPE]

    @property
    def event_type(self) -> Concept:
        return self.coded[c.EVENT_TYPE]

    @property
    def is_carer(self) -> bool:
        return self.client_type.properties.get("is-carer") is True

    @property
    def outcome_ends_event(self) -> bool:
        outcome = self.code(c.EVENT_OUTCOME)
        return outcome is not None and outcome.properties.get("ends-event") is True

    @property
    def closed(self) -> bool:
        """The event has ended: an end date, or an outcome that closes it."""
        return self.event_end is not None or self.outcome_ends_event


_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%Y/%m/%d", "%d.%m.%Y")
_SQL_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_ISO_OR_UK = re.compile(r"^(?:(\d{4})-(\d{2})-(\d{2})|(\d{2})/(\d{2})/(\d{4}))$")
_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)\s*(\d[A-Z]{2})$")


def parse_date(raw: str) -> date:
    """ISO dates, UK dd/mm/yyyy as typed in Excel, and SQL Server datetimes at midnight.

    The error never repeats the value: dates of birth and death are personal data.
    """
    text = raw.strip()
    if m := _SQL_DATETIME.match(text):
        text = m.group(1)
    # The two forms extracts use, without strptime (a tenth of the cost); anything else, or an
    # impossible day, goes the long way below.
    if m := _ISO_OR_UK.match(text):
        year, month, day = (m[1], m[2], m[3]) if m[1] else (m[6], m[5], m[4])
        try:
            return date(int(year), int(month), int(day))
        except ValueError:
            pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError("not a date (expected YYYY-MM-DD or DD/MM/YYYY)")


def normalise_postcode(raw: str) -> str:
    compact = raw.strip().upper()
    m = _POSTCODE.match(compact)
    return f"{m.group(1)} {m.group(2)}" if m else compact


def parse_row(row: SourceRow) -> tuple[CldRecord | None, list[Reason], list[str]]:
    """The typed record and warnings, or None with every reason the row is refused."""
    reasons = [Reason(None, p) for p in row.problems]
    warnings: list[str] = []

    def text(column: str) -> str | None:
        return _text(row, column)

    for column in c.MANDATORY:
        if text(column) is None:
            reasons.append(Reason(column, "mandatory field is blank"))

    coded: dict[str, Concept] = {}
    for column in c.CODED:
        raw = text(column)
        if raw is None:
            continue
        concept = defined_list(column).resolve(raw)
        if concept is None:
            reasons.append(Reason(column, f"'{raw}' is not a value of the CLD defined list"))
        else:
            coded[column] = concept

    if (et := coded.get(c.EVENT_TYPE)) is not None and et.display == "Service" and text(c.SERVICE_TYPE) is None:
        reasons.append(Reason(c.SERVICE_TYPE, "mandatory on a Service event"))

    nhs_number = None
    if (raw_nhs := text(c.NHS_NUMBER)) is not None:
        try:
            nhs_number = validate(raw_nhs)
        except InvalidNhsNumber as exc:
            reasons.append(Reason(c.NHS_NUMBER, str(exc)))

    dates: dict[str, date | None] = {}
    for column in (c.EVENT_START, c.EVENT_END, c.DATE_OF_DEATH, c.DATE_OF_BIRTH):
        raw = text(column)
        dates[column] = None
        if raw is not None:
            try:
                dates[column] = parse_date(raw)
            except ValueError as exc:
                reasons.append(Reason(column, str(exc)))
    start, end = dates[c.EVENT_START], dates[c.EVENT_END]
    if start and end and end < start:
        reasons.append(Reason(c.EVENT_END, "is before Event_Start_Date"))

    birth_date = _birth_date(row, dates[c.DATE_OF_BIRTH], reasons, warnings)

    numbers: dict[str, Decimal | None] = {}
    for column in (c.PLANNED_UNITS, c.UNIT_COST):
        raw = text(column)
        numbers[column] = None
        if raw is not None:
            try:
                value = Decimal(raw.replace(",", "").lstrip("£"))
            except InvalidOperation:
                reasons.append(Reason(column, f"'{raw}' is not a number"))
                continue
            if not value.is_finite() or value < 0:
                reasons.append(Reason(column, f"'{raw}' is not a non-negative number"))
            else:
                numbers[column] = value

    if reasons or start is None:
        return None, reasons, warnings

    record = CldRecord(
        row_number=row.row_number,
        la_code=row.get(c.LA_CODE),
        person_id=row.get(c.PERSON_ID),
        nhs_number=nhs_number,
        gp_practice=(text(c.GP_PRACTICE) or "").upper() or None,
        birth_date=birth_date,
        date_of_death=dates[c.DATE_OF_DEATH],
        postcode=normalise_postcode(p) if (p := text(c.POSTCODE)) else None,
        event_start=start,
        event_end=end,
        planned_units=numbers[c.PLANNED_UNITS],
        unit_cost=numbers[c.UNIT_COST],
        provider_cqc_location=text(c.PROVIDER_CQC_LOCATION),
        worker_id=text(c.WORKER_ID),
        worker_name=text(c.WORKER_NAME),
        cared_for_id=text(c.CARED_FOR_ID),
        coded=coded,
    )
    if record.is_carer and record.cared_for_id is None:
        warnings.append(f"{c.CARED_FOR_ID}: blank on a carer's row, so no RelatedPerson link is made")
    if record.cared_for_id is not None and not record.is_carer:
        warnings.append(f"{c.CARED_FOR_ID}: ignored on a row whose Client_Type is not a carer")
    return record, [], warnings


def _text(row: SourceRow, column: str) -> str | None:
    return row.get(column).strip() or None


def _birth_date(row: SourceRow, dob: date | None, reasons: list[Reason], warnings: list[str]) -> str | None:
    """Date_of_Birth as councils submit it, else Der_Birth_Year + Der_Birth_Month (national extract)."""
    year_raw, month_raw = _text(row, c.BIRTH_YEAR), _text(row, c.BIRTH_MONTH)
    year = month = None
    if year_raw is not None:
        if re.fullmatch(r"(18|19|20)\d{2}", year_raw):
            year = int(year_raw)
        else:
            reasons.append(Reason(c.BIRTH_YEAR, "not a four-digit year"))
    if month_raw is not None:
        if month_raw.isdigit() and 1 <= int(month_raw) <= 12:
            month = int(month_raw)
        else:
            reasons.append(Reason(c.BIRTH_MONTH, "not a month number 1-12"))
    if month is not None and year is None and year_raw is None:
        reasons.append(Reason(c.BIRTH_YEAR, "blank while Der_Birth_Month is given"))
    if dob is not None:
        if year is not None and (dob.year != year or (month is not None and dob.month != month)):
            warnings.append(f"{c.DATE_OF_BIRTH}: disagrees with Der_Birth_Year/Month; Date_of_Birth used")
        return dob.isoformat()
    if year is None:
        return None
    return f"{year:04d}-{month:02d}" if month is not None else f"{year:04d}"
