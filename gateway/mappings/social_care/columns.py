"""Column names of the Adult Social Care Client Level Data (CLD) return, as councils submit them.

The names are the return's own. Three columns are local additions the CLD return does not have,
because a case-management record needs them and council case systems hold them:

- `Allocated_Worker_Id`, `Allocated_Worker_Name`: the person's allocated social worker (→ CareTeam).
- `Cared_For_Person_Unique_Identifier`: on a carer's row, the LA_Person_Unique_Identifier of the
  person they care for (→ RelatedPerson). CLD itself links carers only in the national extract.
"""

from __future__ import annotations

import re

LA_CODE = "LA_Code"
PERSON_ID = "LA_Person_Unique_Identifier"
NHS_NUMBER = "NHS_Number"
GP_PRACTICE = "GP_Practice_Code"
GENDER = "Gender"
ETHNICITY = "Ethnicity"
DATE_OF_BIRTH = "Date_of_Birth"
BIRTH_YEAR = "Der_Birth_Year"
BIRTH_MONTH = "Der_Birth_Month"
DATE_OF_DEATH = "Date_of_Death"
POSTCODE = "Postcode"
CLIENT_TYPE = "Client_Type"
PRIMARY_SUPPORT_REASON = "Primary_Support_Reason"
ACCOMMODATION_STATUS = "Accommodation_Status"
EMPLOYMENT_STATUS = "Employment_Status"
HAS_UNPAID_CARER = "Has_Unpaid_Carer"
CLIENT_FUNDING_STATUS = "Client_Funding_Status"
EVENT_TYPE = "Event_Type"
EVENT_START = "Event_Start_Date"
EVENT_END = "Event_End_Date"
EVENT_OUTCOME = "Event_Outcome"
ROUTE_OF_ACCESS = "Request_Route_of_Access"
ASSESSMENT_TYPE = "Assessment_Type"
ELIGIBLE_NEEDS = "Eligible_Needs_Identified"
SERVICE_TYPE = "Service_Type"
SERVICE_COMPONENT = "Service_Component"
DELIVERY_MECHANISM = "Delivery_Mechanism"
PROVIDER_CQC_LOCATION = "Provider_CQC_Location_ID"
UNIT_COST = "Unit_Cost"
PLANNED_UNITS = "Planned_units_per_week"
REVIEW_REASON = "Review_Reason"
REVIEW_OUTCOMES = "Review_Outcomes_Achieved"
REPORTING_START = "Reporting_Period_Start_Date"
REPORTING_END = "Reporting_Period_End_Date"

# Local additions (see module docstring).
WORKER_ID = "Allocated_Worker_Id"
WORKER_NAME = "Allocated_Worker_Name"
CARED_FOR_ID = "Cared_For_Person_Unique_Identifier"

ALL_COLUMNS: tuple[str, ...] = (
    LA_CODE, REPORTING_START, REPORTING_END, PERSON_ID, NHS_NUMBER, GP_PRACTICE, GENDER, ETHNICITY,
    DATE_OF_BIRTH, BIRTH_YEAR, BIRTH_MONTH, DATE_OF_DEATH, POSTCODE, CLIENT_TYPE, PRIMARY_SUPPORT_REASON,
    ACCOMMODATION_STATUS, EMPLOYMENT_STATUS, HAS_UNPAID_CARER, CLIENT_FUNDING_STATUS, EVENT_TYPE,
    EVENT_START, EVENT_END, EVENT_OUTCOME, ROUTE_OF_ACCESS, ASSESSMENT_TYPE, ELIGIBLE_NEEDS, SERVICE_TYPE,
    SERVICE_COMPONENT, DELIVERY_MECHANISM, PROVIDER_CQC_LOCATION, UNIT_COST, PLANNED_UNITS, REVIEW_REASON,
    REVIEW_OUTCOMES, WORKER_ID, WORKER_NAME, CARED_FOR_ID,
)  # fmt: skip

# Mandatory on every row; Service_Type is also mandatory on Service rows.
MANDATORY: tuple[str, ...] = (LA_CODE, PERSON_ID, CLIENT_TYPE, EVENT_TYPE, EVENT_START)

# Columns checked against a defined list (profiles/CodeSystem-asc-<column>.json) when not blank.
CODED: tuple[str, ...] = (
    GENDER, ETHNICITY, CLIENT_TYPE, PRIMARY_SUPPORT_REASON, ACCOMMODATION_STATUS, EMPLOYMENT_STATUS,
    HAS_UNPAID_CARER, EVENT_TYPE, EVENT_OUTCOME, ROUTE_OF_ACCESS, ASSESSMENT_TYPE, ELIGIBLE_NEEDS,
    SERVICE_TYPE, SERVICE_COMPONENT, DELIVERY_MECHANISM, REVIEW_REASON, REVIEW_OUTCOMES,
)  # fmt: skip

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_BY_KEY = {_NOT_ALNUM.sub("", c.casefold()): c for c in ALL_COLUMNS}


def canonical_column(header: str) -> str:
    """The return's spelling of a header typed with other case, spacing or separators; else stripped."""
    cleaned = header.strip().lstrip("\ufeff").strip()
    return _BY_KEY.get(_NOT_ALNUM.sub("", cleaned.casefold()), cleaned)
