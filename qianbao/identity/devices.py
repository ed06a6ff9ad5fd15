"""The devices and countries an account signs in from, and what a new device sets off.

A *device* is a long-lived random id the browser keeps in an HttpOnly cookie (an API
client keeps the ``device_id`` its first sign-in returned and sends it again). The
database keeps only a keyed hash of it under the keyring (``sealing.Keyring.keyed_hash``)
with the account's id in the message: the ids are useless to whoever reads the database,
and one device is not linkable across two accounts.

A sign-in from a device the account has not seen sends a notice (SMS, and email when the
address is proven) with the time in the person's time zone, the place and the device,
and a link that ends that one session: signed with the server key, so following it needs
no login, and it can do nothing but end the session it names, once.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import ua_parser
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from qianbao.db import Tx
from qianbao.i18n import N_, Language, language_scope, translate
from qianbao.i18n.formats import DEFAULT_TIME_ZONE, is_time_zone, local_datetime
from qianbao.identity import places
from qianbao.identity.models import AuthSession, KnownDevice, SignInCountry, User
from qianbao.notify.email import queue_email
from qianbao.notify.service import queue_sms
from qianbao.sealing import keyring

_DEVICE_PURPOSE: Final = b"qianbao device"
_END_LINK_PURPOSE: Final = b"\x1fqianbao end-session link"
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes, base64url
END_LINK_PATH: Final = "/sessions/end/"
UNKNOWN_DEVICE = N_("Unknown device")
INVALID_LINK = N_("This link is not valid. Copy the whole link from the message.")
_PRODUCT = re.compile(r"[A-Za-z][A-Za-z0-9._-]{1,39}")


# --- device ids and names --------------------------------------------------------------


def new_device_id() -> str:
    return secrets.token_urlsafe(32)


def usable_device_id(value: str | None) -> str | None:
    """The id if it has the shape of one this server hands out, else None (a new one is
    made): an attacker's cookie of any other shape never reaches the hash."""
    return value if value and DEVICE_ID.fullmatch(value) else None


def device_name(user_agent: str) -> str:
    """ "Chrome Mobile on Android", in the current language, from the user agent (uap-core's
    rules through ua-parser); a client no rule knows by its product name ("okhttp"), else
    "Unknown device"."""
    browser, system, product = _parts(user_agent)
    if browser and system:
        return translate(N_("{browser} on {system}"), {"browser": browser, "system": system})
    return browser or system or product or translate(UNKNOWN_DEVICE)


@lru_cache(maxsize=2048)
def _parts(user_agent: str) -> tuple[str | None, str | None, str | None]:
    parsed = ua_parser.parse(user_agent[:512])
    browser = parsed.user_agent.family if parsed.user_agent else None
    system = parsed.os.family if parsed.os else None
    first = user_agent.strip().split("/", 1)[0].split(" ", 1)[0]
    product = first if _PRODUCT.fullmatch(first) else None
    return _known(browser), _known(system), product


def _known(family: str | None) -> str | None:
    return family if family and family != "Other" else None


def _device_hash(tx: Tx, user_id: uuid.UUID, device_id: str, key_id: str | None = None) -> str:
    chosen, mac = keyring(tx.settings).keyed_hash(
        user_id.bytes + b"\x1f" + device_id.encode(), _DEVICE_PURPOSE, key_id
    )
    return f"{chosen}${base64.urlsafe_b64encode(mac).decode()}"


def remember_device(
    tx: Tx, user_id: uuid.UUID, device_id: str, user_agent: str
) -> tuple[KnownDevice, bool]:
    """The account's record of this device, and whether it is new to the account.

    Two first sign-ins of one device at once (an SMS login and a password login hold
    different locks) both find nothing; the second insert meets the unique key, and that
    sign-in takes the first one's record: the device is new once, one notice goes out."""
    ring = keyring(tx.settings)
    hashes = [_device_hash(tx, user_id, device_id, key_id) for key_id in ring.key_ids]
    found = _known_device(tx, user_id, hashes)
    now = tx.now()
    if found is not None:
        found.last_seen_at = now
        found.device_hash = hashes[0]  # moves to the current key
        return found, False
    with language_scope("en"):  # the record's name is for operators; pages name it anew
        name = device_name(user_agent)[:128]
    device = KnownDevice(
        user_id=user_id, device_hash=hashes[0], name=name, first_seen_at=now, last_seen_at=now
    )
    if _insert_once(tx, device):
        return device, True
    raced = _known_device(tx, user_id, hashes)
    assert raced is not None  # the row whose key the insert met
    return raced, False


def _known_device(tx: Tx, user_id: uuid.UUID, hashes: list[str]) -> KnownDevice | None:
    return tx.session.scalars(
        select(KnownDevice).where(
            KnownDevice.user_id == user_id, KnownDevice.device_hash.in_(hashes)
        )
    ).first()


def _insert_once(tx: Tx, row: KnownDevice | SignInCountry) -> bool:
    """Insert ``row`` in a savepoint; False if a concurrent sign-in inserted its key first
    (READ COMMITTED: the next statement sees that row)."""
    try:
        with tx.session.begin_nested():
            tx.session.add(row)
    except IntegrityError:
        return False
    return True


# --- countries -------------------------------------------------------------------------


def is_new_country(tx: Tx, user_id: uuid.UUID, country: str | None) -> bool:
    """A known country that none of the account's earlier sign-ins came from."""
    if country is None:
        return False
    return tx.session.get(SignInCountry, (user_id, country)) is None


def remember_country(tx: Tx, user_id: uuid.UUID, country: str | None) -> None:
    if country is None:
        return
    now = tx.now()
    found = tx.session.get(SignInCountry, (user_id, country))
    if found is not None:
        found.last_seen_at = now
        return
    # Known by now either way; a concurrent sign-in's row (same key) serves as well.
    _insert_once(
        tx, SignInCountry(user_id=user_id, country=country, first_seen_at=now, last_seen_at=now)
    )


# --- the notice and its link -----------------------------------------------------------


def end_link_token(tx: Tx, session_id: uuid.UUID) -> str:
    """The session's id and a 128-bit tag under the server key, base64url: 43 characters,
    short enough for an SMS."""
    return base64.urlsafe_b64encode(session_id.bytes + _tag(tx, session_id)).decode().rstrip("=")


def session_of_end_link(tx: Tx, token: str) -> uuid.UUID | None:
    """The session an end link names, or None for a link this server did not make."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
        return None
    raw = base64.urlsafe_b64decode(token + "=")
    session_id = uuid.UUID(bytes=raw[:16])
    return session_id if hmac.compare_digest(raw[16:], _tag(tx, session_id)) else None


def _tag(tx: Tx, session_id: uuid.UUID) -> bytes:
    message = session_id.bytes + _END_LINK_PURPOSE
    return hmac.new(tx.settings.hmac_key(), message, "sha256").digest()[:16]


def end_link(tx: Tx, session_id: uuid.UUID) -> str:
    base = tx.settings.public_base_url.rstrip("/")
    return f"{base}{END_LINK_PATH}{end_link_token(tx, session_id)}"


@dataclass(frozen=True)
class SignInFacts:
    """What the notice and the end-link page say about one sign-in."""

    time: str
    place: str
    device: str


def describe(session: AuthSession, user: User, language: Language) -> SignInFacts:
    """The time on the person's own clock (their profile's zone, Beijing's until they
    choose one), the zone named as every page names it."""
    zone = user.time_zone if is_time_zone(user.time_zone) else DEFAULT_TIME_ZONE
    with language_scope(language):
        return SignInFacts(
            time=local_datetime(session.created_at, zone, language),
            place=places.place_name(session.country, language),
            device=device_name(session.user_agent),
        )


_SMS_NOTICE = N_(
    "A new device signed in to your account at {time}, from {place}, on {device}. "
    "Not you? End that session: {link} and change your password."
)
_EMAIL_SUBJECT = N_("New sign-in to your Qianbao account")
_EMAIL_NOTICE = N_(
    "Your Qianbao account was signed in on a device it had not seen before.\n\n"
    "Time: {time}\nPlace: {place}\nDevice: {device}\n\n"
    "If this was you, there is nothing to do. If it was not, end that session now with "
    "this link (no login needed; it ends only that session), then change your login "
    "password:\n{link}"
)


def queue_new_device_notice(tx: Tx, user: User, session: AuthSession) -> None:
    """The SMS (and email, when the address is proven), in the account's language,
    queued in this transaction: sent only if the sign-in commits."""
    language: Language = "zh_Hans" if user.language == "zh_Hans" else "en"
    facts = describe(session, user, language)
    params = {
        "time": facts.time,
        "place": facts.place,
        "device": facts.device,
        "link": end_link(tx, session.id),
    }
    with language_scope(language):
        queue_sms(tx, user.phone_e164, translate(_SMS_NOTICE, params), language)
        if user.email is not None and user.email_verified_at is not None:
            subject, body = translate(_EMAIL_SUBJECT), translate(_EMAIL_NOTICE, params)
            queue_email(tx, user.email, subject, body, language)


# --- following the link ----------------------------------------------------------------


@dataclass(frozen=True)
class LinkedSession:
    """The sign-in an end link names, as its page shows it."""

    facts: SignInFacts
    ended: bool  # already ended (by this link, a logout, or its time running out)


def _linked(tx: Tx, token: str) -> tuple[AuthSession, User] | None:
    session_id = session_of_end_link(tx, token)
    if session_id is None:
        return None
    session = tx.session.get(AuthSession, session_id)
    if session is None:
        return None
    return session, tx.session.get_one(User, session.user_id)


def linked_session(tx: Tx, token: str, language: Language) -> LinkedSession | None:
    """What the link's page shows before its button is pressed; None: no such link."""
    found = _linked(tx, token)
    if found is None:
        return None
    session, user = found
    ended = session.revoked_at is not None or session.expires_at <= tx.now()
    return LinkedSession(describe(session, user, language), ended)


def end_by_link(tx: Tx, token: str) -> bool | None:
    """End the one session the link names; True if it was running until now, False if
    it had already ended (the link's single use is spent), None for no such link."""
    found = _linked(tx, token)
    if found is None:
        return None
    session, _ = found
    locked = tx.session.scalars(
        select(AuthSession).where(AuthSession.id == session.id).with_for_update()
    ).one()
    if locked.revoked_at is not None or locked.expires_at <= tx.now():
        return False
    locked.revoked_at = tx.now()
    return True
