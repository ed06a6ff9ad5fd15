"""Use cases of the profile domain: the personal information that Alipay asks for after
real-name verification (occupation type and address) and whether it is complete.

Every check runs before anything is written, so a refused change leaves the stored
information as it was (and the request's transaction rolls back in any case).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from qianbao.db import Tx
from qianbao.errors import InvalidInput
from qianbao.i18n import N_, translate
from qianbao.profile.models import STREET_MAX_LENGTH, PersonalInfo
from qianbao.profile.occupations import OCCUPATIONS, Occupation, find_occupation
from qianbao.profile.regions import City, State, find_state, location_label

Field = Literal["occupation", "address"]
FIELDS: tuple[Field, ...] = ("occupation", "address")
FIELD_LABELS: dict[Field, str] = {"occupation": N_("Occupation type"), "address": N_("Address")}

# Line breaks typed into the street box become one space; other control characters,
# the bidirectional overrides and isolates (which can make text read other than it is
# stored) and lone surrogates are refused.
_LINE_BREAKS = re.compile(r"(?:[ \u3000]*(?:\r\n|[\r\n\u2028\u2029]))+[ \u3000]*")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class Address:
    state: State
    city: City
    street: str

    def location(self) -> str:
        """The state and city in the current language (广东省广州市, Guangzhou, Guangdong)."""
        return location_label(self.state, self.city)


@dataclass(frozen=True)
class PersonalDetails:
    """What a person has filled in. A field whose stored code is no longer offered (a
    region merged away) counts as missing, so the person is asked again."""

    occupation: Occupation | None
    address: Address | None
    updated_at: datetime | None

    @property
    def missing(self) -> tuple[Field, ...]:
        present = {"occupation": self.occupation is not None, "address": self.address is not None}
        return tuple(field for field in FIELDS if not present[field])

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class Completeness:
    missing: tuple[Field, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def field_label(field: Field) -> str:
    return translate(FIELD_LABELS[field])


def status_label(complete: bool) -> str:
    """ "Complete" or "Incomplete", as the certification center shows it."""
    return translate(N_("Complete") if complete else N_("Incomplete"))


def occupations() -> tuple[Occupation, ...]:
    return OCCUPATIONS


# --- reading ---------------------------------------------------------------------------


def get_personal_info(tx: Tx, user_id: uuid.UUID) -> PersonalDetails:
    row = tx.session.get(PersonalInfo, user_id)
    if row is None:
        return PersonalDetails(None, None, None)
    return PersonalDetails(
        find_occupation(row.occupation) if row.occupation else None,
        _stored_address(row),
        row.updated_at,
    )


def completeness(tx: Tx, user_id: uuid.UUID) -> Completeness:
    """Which fields are still to be filled in (none: "Complete")."""
    return Completeness(get_personal_info(tx, user_id).missing)


def _stored_address(row: PersonalInfo) -> Address | None:
    if row.state_code is None or row.city_code is None or row.street is None:
        return None
    state = find_state(row.state_code)
    city = state.city(row.city_code) if state else None
    if state is None or city is None:
        return None
    return Address(state, city, row.street)


# --- changing ---------------------------------------------------------------------------


def set_occupation(tx: Tx, user_id: uuid.UUID, code: str) -> PersonalDetails:
    occupation = find_occupation(code.strip())
    if occupation is None:
        raise InvalidInput(
            "profile.unknown_occupation",
            N_("Choose an occupation type from the list."),
            details={"field": "occupation"},
        )
    row = _row_for_update(tx, user_id)
    row.occupation = occupation.code
    row.updated_at = tx.now()
    tx.session.flush()
    return get_personal_info(tx, user_id)


def set_address(
    tx: Tx, user_id: uuid.UUID, state_code: str, city_code: str, street: str
) -> PersonalDetails:
    """Set the location (a state and one of its cities, or Overseas for both) and the
    street address, all three together."""
    state, city = check_location(state_code, city_code)
    cleaned = clean_street(street)
    row = _row_for_update(tx, user_id)
    row.state_code, row.city_code, row.street = state.code, city.code, cleaned
    row.updated_at = tx.now()
    tx.session.flush()
    return get_personal_info(tx, user_id)


def _row_for_update(tx: Tx, user_id: uuid.UUID) -> PersonalInfo:
    row = tx.session.get(PersonalInfo, user_id)
    if row is None:
        row = PersonalInfo(user_id=user_id, updated_at=tx.now())
        tx.session.add(row)
    return row


# --- checks -----------------------------------------------------------------------------


def check_location(state_code: str, city_code: str) -> tuple[State, City]:
    state = find_state(state_code.strip())
    if state is None:
        raise InvalidInput(
            "profile.unknown_region",
            N_("Choose a state or province from the list."),
            details={"field": "state"},
        )
    city = state.city(city_code.strip())
    if city is None:
        raise InvalidInput(
            "profile.city_not_in_region",
            N_("Choose a city in {state}."),
            {"state": state.name()},
            details={"field": "city", "state": state.code},
        )
    return state, city


def clean_street(street: str) -> str:
    """The street address as stored: any script, trimmed, in NFC, one line, at most
    ``STREET_MAX_LENGTH`` characters, no control characters."""
    text = unicodedata.normalize("NFC", _LINE_BREAKS.sub(" ", street.strip()))
    if not text:
        raise InvalidInput(
            "profile.street_empty", N_("Enter your street address."), details={"field": "street"}
        )
    if len(text) > STREET_MAX_LENGTH:
        raise InvalidInput(
            "profile.street_too_long",
            N_("The street address can have at most {max} characters; this one has {length}."),
            {"max": STREET_MAX_LENGTH, "length": len(text)},
            details={"field": "street", "max_length": STREET_MAX_LENGTH, "length": len(text)},
        )
    if any(_is_control(char) for char in text):
        raise InvalidInput(
            "profile.street_control_characters",
            N_(
                "The street address contains control characters such as tabs. "
                "Type it as plain text."
            ),
            details={"field": "street"},
        )
    return text


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Cs"} or char in _BIDI_CONTROLS
