"""A password sign-in from a new country: the right password, then an SMS code.

When a password sign-in comes from a country (``places``) that none of the account's
earlier sign-ins came from, the password alone opens nothing. The sign-in gets a
*challenge*: a token signed with the server key that says "this account's password was
proven at this time" and stops working when the password changes or after
``new_country_code_window_seconds``. A login code goes to the account's number; the
challenge and that code together open the session (``confirm``). Both are needed: the
challenge alone is no session, and the code is the number's ordinary login code, which
counts wrong tries and locks as every login code does.

The JSON API answers the first step ``202`` with ``status: "sms_code_required"``.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated, QianbaoError
from qianbao.i18n import N_, Language
from qianbao.identity.codes import keyed_hash
from qianbao.identity.models import User
from qianbao.identity.phone import PhoneNumber, from_e164
from qianbao.identity.service import (
    NUMBER_LOCKED,
    Client,
    CodeSent,
    SignedIn,
    as_signed_in,
    code_status,
    consume_code,
    open_session,
    send_code,
)


@dataclass(frozen=True)
class SmsCodeRequired:
    """The password was right; the sign-in comes from a new country. Enter the code
    that was sent to ``sent.phone`` with ``challenge`` (``confirm``)."""

    challenge: str
    sent: CodeSent
    expires_at: datetime  # the challenge's own end


@dataclass(frozen=True)
class Challenge:
    """A challenge made in a password check's transaction; the code is sent after it."""

    token: str
    phone: PhoneNumber
    language: Language
    expires_at: datetime


def challenge_for(tx: Tx, user: User) -> Challenge:
    expires = tx.now() + timedelta(seconds=tx.settings.new_country_code_window_seconds)
    stamp = int(expires.timestamp())
    language: Language = "zh_Hans" if user.language == "zh_Hans" else "en"
    token = f"{user.id.hex}.{stamp}.{_tag(tx, user, stamp)}"
    return Challenge(token, from_e164(user.phone_e164), language, expires)


def _tag(tx: Tx, user: User, stamp: int) -> str:
    # The stored password hash is in the message: a changed password voids the challenge.
    secret = tx.settings.hmac_key()
    return keyed_hash(secret, "new-country", user.id.hex, str(stamp), user.password_hash or "")


_INVALID = N_("This sign-in has expired. Log in with your password again.")


def _proven_user(tx: Tx, token: str) -> User:
    """The account whose password the challenge proves, locked; refused if it is not
    one of ours, or has run out, or the password changed since."""
    user_hex, _, rest = token.partition(".")
    stamp_text, _, tag = rest.partition(".")
    try:
        user_id, stamp = uuid.UUID(hex=user_hex), int(stamp_text)
    except ValueError:
        raise NotAuthenticated("login.challenge_invalid", _INVALID) from None
    if user_hex != user_id.hex:  # only the token as issued: no other spelling of the id
        raise NotAuthenticated("login.challenge_invalid", _INVALID)
    user = tx.session.scalars(select(User).where(User.id == user_id).with_for_update()).first()
    if user is None or not hmac.compare_digest(tag.encode(), _tag(tx, user, stamp).encode()):
        raise NotAuthenticated("login.challenge_invalid", _INVALID)
    if datetime.fromtimestamp(stamp, UTC) <= tx.now():
        raise NotAuthenticated("login.challenge_expired", _INVALID)
    return user


def ask_for_code(db: Database, challenge: Challenge, client: Client) -> SmsCodeRequired:
    """Send the login code to the account's number (a code sent a moment ago stands)."""
    try:
        sent = send_code(db, challenge.phone, "login", client, challenge.language)
    except QianbaoError as error:
        standing = db.run(lambda tx: code_status(tx, challenge.phone, "login"))
        if error.code != "otp.resend_too_soon" or standing is None:
            raise
        sent = standing
    return SmsCodeRequired(challenge.token, sent, challenge.expires_at)


def resend(db: Database, token: str, client: Client) -> SmsCodeRequired:
    """Another code for a challenge that is still good (the usual resend limits apply)."""
    found = db.run(lambda tx: _reissue(tx, token))
    sent = send_code(db, found.phone, "login", client, found.language)
    return SmsCodeRequired(token, sent, found.expires_at)


def _reissue(tx: Tx, token: str) -> Challenge:
    user = _proven_user(tx, token)
    stamp = int(token.split(".")[1])
    language: Language = "zh_Hans" if user.language == "zh_Hans" else "en"
    return Challenge(
        token, from_e164(user.phone_e164), language, datetime.fromtimestamp(stamp, UTC)
    )


def masked_phone(tx: Tx, token: str) -> str:
    """Where a good challenge's code went, masked, for its form shown again; else ""."""
    try:
        return from_e164(_proven_user(tx, token).phone_e164).masked()
    except NotAuthenticated:
        return ""


def confirm(db: Database, token: str, code: str, client: Client, kind: str = "api") -> SignedIn:
    """The challenge and the SMS code: the session opens (and the country is learnt)."""
    return db.run(lambda tx: _confirm(tx, token, code, client, kind), isolation=NUMBER_LOCKED)


def _confirm(tx: Tx, token: str, code: str, client: Client, kind: str) -> SignedIn:
    user = _proven_user(tx, token)
    consume_code(tx, from_e164(user.phone_e164), "login", code)
    return as_signed_in(user, open_session(tx, user, client, kind))
