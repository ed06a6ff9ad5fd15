"""Tables of the profile domain: a person's occupation type and address."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime

STREET_MAX_LENGTH = 200


class PersonalInfo(Base):
    """One row per person, written the first time they fill in a field.

    Codes, not names: ``occupation`` is a code of ``occupations.py``; ``state_code`` and
    ``city_code`` are GB/T 2260 codes (or ``OVERSEAS``) of ``regions.py``.
    """

    __tablename__ = "personal_info"
    __table_args__ = (
        # An address is whole or absent: never a state without its city and street.
        CheckConstraint(
            "(state_code IS NULL AND city_code IS NULL AND street IS NULL)"
            " OR (state_code IS NOT NULL AND city_code IS NOT NULL AND street IS NOT NULL)",
            name="address_whole",
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    occupation: Mapped[str | None] = mapped_column(String(32), default=None)
    state_code: Mapped[str | None] = mapped_column(String(16), default=None)
    city_code: Mapped[str | None] = mapped_column(String(16), default=None)
    street: Mapped[str | None] = mapped_column(String(STREET_MAX_LENGTH), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
