"""Request and response shapes of the profile API (never the table itself)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MissingField = Literal["occupation", "address"]


class OccupationOut(BaseModel):
    code: str = Field(examples=["foreign_employee"])
    label: str = Field(description="In the reader's language.", examples=["外籍人士在华工作"])


class PlaceOut(BaseModel):
    code: str = Field(description="GB/T 2260 code (six digits), or OVERSEAS.", examples=["440100"])
    name: str = Field(description="In the reader's language.", examples=["Guangzhou"])
    name_en: str
    name_zh: str


class StateOut(PlaceOut):
    single_city: bool = Field(
        description="A municipality, Hong Kong, Macau, Taiwan or Overseas: its only city "
        "is itself, under the same code."
    )


class AddressOut(BaseModel):
    state: PlaceOut
    city: PlaceOut
    street: str
    location: str = Field(
        description="State and city as one line in the reader's language.",
        examples=["Guangzhou, Guangdong"],
    )


class MissingOut(BaseModel):
    field: MissingField
    label: str


class PersonalInfoOut(BaseModel):
    occupation: OccupationOut | None
    address: AddressOut | None
    complete: bool
    status: str = Field(description='"Complete" or "Incomplete" in the reader\'s language.')
    missing: list[MissingOut]
    updated_at: datetime | None


class OccupationIn(BaseModel):
    occupation: str = Field(max_length=64, examples=["foreign_employee"])


class AddressIn(BaseModel):
    state: str = Field(
        max_length=64, description="A state code from /api/v1/regions.", examples=["OVERSEAS"]
    )
    city: str = Field(
        max_length=64,
        description="A city code from /api/v1/regions/{state}/cities.",
        examples=["OVERSEAS"],
    )
    # Generous here so that a long address gets the clear ``profile.street_too_long``.
    street: str = Field(
        max_length=10_000,
        description="1 to 200 characters after trimming, any script, no control characters.",
        examples=["1 Main Street, Springfield"],
    )
