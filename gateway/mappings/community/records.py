"""The community-provider JSON record format: contacts, referrals and team membership.

This pydantic model is the contract; `fixtures/community/contact.schema.json` is its published
JSON Schema (generated from it, and a test keeps the two equal). One record describes one thing
a provider did or knows, about one person, under the provider's own ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from gateway.identity.nhs_number import InvalidNhsNumber, validate

SCHEMA_ID = "https://care-gateway.example.org/fhir/schema/community-record.schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Person(_Strict):
    """Who the record is about. `localId` is the provider's own id for the person."""

    localId: str = Field(min_length=1)
    nhsNumber: str | None = Field(default=None, description="10 digits, valid Modulus 11; omit if unknown")
    family: str | None = None
    given: list[str] = Field(default_factory=list)
    birthDate: dt.date | None = None
    gender: Literal["male", "female", "other", "unknown"] | None = None
    postcode: str | None = None

    @field_validator("nhsNumber")
    @classmethod
    def _valid_nhs_number(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return validate(value)
        except InvalidNhsNumber as exc:
            raise ValueError(str(exc)) from None


class Practitioner(_Strict):
    id: str | None = Field(default=None, description="the provider's staff id")
    name: str | None = None
    role: str | None = None


class Contact(_Strict):
    """A contact with the person. Out-of-hours and NHS 111 contacts are presentations."""

    recordType: Literal["contact"]
    recordId: str = Field(min_length=1)
    person: Person
    service: Literal["community-nursing", "voluntary-sector", "out-of-hours", "nhs-111"]
    mode: Literal["home-visit", "clinic", "telephone", "video"]
    status: Literal["planned", "in-progress", "finished", "cancelled"] = "finished"
    start: AwareDatetime
    end: AwareDatetime | None = None
    reason: str | None = None
    practitioner: Practitioner | None = None


class Referral(_Strict):
    """A referral the provider made or received for the person."""

    recordType: Literal["referral"]
    recordId: str = Field(min_length=1)
    person: Person
    status: Literal["draft", "active", "completed", "revoked"] = "active"
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    authored: AwareDatetime
    toService: str = Field(min_length=1, description="the service referred to, as text")
    toOrganisationOds: str | None = None
    fromPractitioner: Practitioner | None = None
    reason: str | None = None


class TeamMember(_Strict):
    practitioner: Practitioner
    role: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None


class TeamMembership(_Strict):
    """The provider's team looking after the person, and who is in it."""

    recordType: Literal["team-membership"]
    recordId: str = Field(min_length=1, description="the provider's id for this team-for-this-person")
    person: Person
    teamName: str = Field(min_length=1)
    status: Literal["active", "inactive"] = "active"
    start: dt.date | None = None
    end: dt.date | None = None
    members: list[TeamMember] = Field(min_length=1)


CommunityRecord = Annotated[Contact | Referral | TeamMembership, Field(discriminator="recordType")]
"""One record of any of the three kinds, told apart by `recordType`."""

RECORD_ADAPTER: TypeAdapter[Contact | Referral | TeamMembership] = TypeAdapter(CommunityRecord)


def json_schema() -> dict[str, object]:
    """The JSON Schema published as fixtures/community/contact.schema.json."""
    inner = RECORD_ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Community provider record (contact, referral or team membership)",
        "description": (
            "One JSON object per record; a file is an array of records or an object with a 'records' "
            "array. Datetimes carry a UTC offset. NHS numbers must pass the Modulus 11 check."
        ),
        "oneOf": inner["oneOf"],  # pydantic's "discriminator" is OpenAPI, not JSON Schema: left out
        "$defs": inner["$defs"],
    }
