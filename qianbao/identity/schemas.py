"""Request and response shapes of the identity API (never the tables themselves)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from qianbao.i18n import Language


class PhoneIn(BaseModel):
    country: str = Field(
        default="CN",
        max_length=8,
        examples=["GB"],
        description="Region of the calling-code picker (ISO 3166-1 alpha-2, or 001-882 "
        "style for global services). Ignored when the number starts with +.",
    )
    number: str = Field(max_length=64, examples=["07911 123456"])


class NumberCheckOut(BaseModel):
    e164: str
    international: str
    has_account: bool
    next: Literal["signup", "login"]


class CodeRequestIn(PhoneIn):
    purpose: Literal["signup", "login"]
    agreement_version: str | None = Field(
        default=None,
        max_length=32,
        description="Required for sign-up: the version of the agreement the person accepted.",
    )


class CodeSentOut(BaseModel):
    international: str
    purpose: Literal["signup", "login", "security"]
    code_length: int
    expires_at: datetime
    resend_at: datetime


class CodeVerifyIn(PhoneIn):
    purpose: Literal["signup", "login"]
    code: str = Field(max_length=16)
    device_id: str | None = Field(
        default=None,
        max_length=64,
        description="The `device_id` an earlier sign-in on this device answered. A device "
        "the account has not seen (none given, or unknown) sets off a new-device notice "
        "to the account's number and proven email.",
    )


class VerificationOut(BaseModel):
    level: str
    label: str


class AccountOut(BaseModel):
    id: uuid.UUID
    phone: str
    language: Language
    time_zone: str = Field(description="IANA time zone the pages show times in")
    verification: VerificationOut
    created_at: datetime


class SignedInOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type name
    expires_at: datetime
    is_new_account: bool
    account: AccountOut
    device_id: str = Field(
        description="This device's id: keep it and send it with every later sign-in."
    )


class SmsCodeRequiredOut(BaseModel):
    """202 from a password sign-in: the password was right, but the sign-in comes from a
    country none of the account's earlier sign-ins came from. A login code was sent to
    the account's number: POST it with `challenge` to /api/v1/auth/password-sessions/sms
    (a new code: /api/v1/auth/password-sessions/sms-codes)."""

    status: Literal["sms_code_required"] = "sms_code_required"
    message: str
    challenge: str = Field(description="Send it back with the code; good until expires_at.")
    phone: str = Field(description="The account's number, masked: where the code went.")
    code_length: int
    code_expires_at: datetime
    resend_at: datetime
    expires_at: datetime


class ChallengeIn(BaseModel):
    challenge: str = Field(max_length=200)


class ChallengeCodeIn(ChallengeIn):
    code: str = Field(max_length=16)
    device_id: str | None = Field(
        default=None,
        max_length=64,
        description="The `device_id` an earlier sign-in on this device answered. A device "
        "the account has not seen (none given, or unknown) sets off a new-device notice "
        "to the account's number and proven email.",
    )


class EndLinkIn(BaseModel):
    token: str = Field(
        max_length=64, description="The token at the end of the new-device notice's link."
    )


class EndLinkOut(BaseModel):
    ended: bool = Field(description="false: that session had already ended")


class SessionOut(BaseModel):
    id: uuid.UUID
    kind: str
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    device_name: str = Field(examples=["Chrome Mobile on Android"])
    country: str | None = Field(description="ISO 3166-1 alpha-2; null: not known")
    place: str = Field(description="The country's name, or 'unknown place'")
    current: bool


class LanguageIn(BaseModel):
    language: Language


class TimeZoneIn(BaseModel):
    time_zone: str = Field(max_length=64, examples=["Asia/Shanghai", "Europe/London"])


class CallingCodeOut(BaseModel):
    key: str
    region: str
    code: int
    name: str
    name_en: str
    name_zh: str


class AgreementOut(BaseModel):
    version: str
    title: str
    paragraphs: list[str]


class SecurityStatusOut(BaseModel):
    phone: str
    email: str | None
    email_pending: str | None
    has_login_password: bool
    login_password_changed_at: datetime | None
    has_payment_password: bool
    payment_locked_until: datetime | None


class LoginPasswordIn(BaseModel):
    new_password: str = Field(max_length=256)
    current_password: str | None = Field(default=None, max_length=256)
    sms_code: str | None = Field(default=None, max_length=16)


class PaymentPasswordIn(BaseModel):
    new_password: str = Field(max_length=16, description="Exactly 6 digits.")
    current_password: str | None = Field(default=None, max_length=16)
    sms_code: str | None = Field(default=None, max_length=16)


class PaymentPasswordCheckIn(BaseModel):
    password: str = Field(max_length=16)


class PasswordLoginIn(BaseModel):
    login: str = Field(max_length=254, description="A mobile number (with country) or an email")
    country: str = Field(default="CN", max_length=8)
    password: str = Field(max_length=256)
    device_id: str | None = Field(
        default=None,
        max_length=64,
        description="The `device_id` an earlier sign-in on this device answered. A device "
        "the account has not seen (none given, or unknown) sets off a new-device notice "
        "to the account's number and proven email.",
    )


class EmailIn(BaseModel):
    email: str = Field(max_length=320)
    sms_code: str | None = Field(default=None, max_length=16)


class EmailCodeIn(BaseModel):
    code: str = Field(max_length=16)


class StrengthIn(BaseModel):
    password: str = Field(max_length=256)


class StrengthOut(BaseModel):
    score: int = Field(ge=0, le=4)
    label: str


class EndedOut(BaseModel):
    ended: int


class RightOut(BaseModel):
    key: str
    label: str
    value: str
    allowed: bool
    used: str | None = None  # how much of the limit is used


class LevelOut(BaseModel):
    level: str  # how the person is verified: unverified, passport_face, ...
    has_bank_card: bool
    tier: str  # unverified, class_ii, class_iii
    tier_label: str
    rights: list[RightOut]
    next_tier: str | None
    next_tier_label: str | None
    next_tier_adds: list[RightOut]
    how_to_reach_next: str | None
