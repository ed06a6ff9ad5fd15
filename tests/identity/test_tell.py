"""SMS to an account: the message is translated, names and amounts are put in as they are."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po
from sqlalchemy import update

from qianbao.db import Database
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.models import User
from qianbao.notify.service import SMS_SIGNED, read_outbox
from tests.helpers import sign_up

PO = Path(__file__).parents[2] / "qianbao/i18n/zh_Hans/LC_MESSAGES/messages.po"
MESSAGE = N_("{who} paid you. Reason: {reason}.")


def test_values_are_never_looked_up_in_the_catalog_only_msgids_are(db: Database) -> None:
    person = sign_up(db).account
    db.run(
        lambda tx: tx.session.execute(
            update(User).where(User.id == person.id).values(language="zh_Hans")
        )
    )
    db.run(
        lambda tx: identity.tell(
            tx,
            person.id,
            MESSAGE,
            {"who": "Balance"},  # a shop may be called that; it is not the msgid
            msgid_params={"reason": "Balance"},  # this one is a msgid
        )
    )
    body = db.run(lambda tx: read_outbox(tx, person.phone.e164, limit=1))[0].body
    assert body.count("Balance") == 1  # the name kept, the msgid translated ("余额")
    assert "余额" in body


def test_every_sms_carries_the_one_signature_of_its_language(db: Database) -> None:
    """The signature is added in one place (notify.queue_sms): 【钱包】 first in Chinese (a
    Chinese SMS signature opens the text), [Qianbao] first in English, never twice."""
    person = sign_up(db).account
    db.run(lambda tx: identity.tell(tx, person.id, identity.VERIFIED_SMS))
    english = db.run(lambda tx: read_outbox(tx, person.phone.e164, limit=1))[0].body
    assert english == (
        "[Qianbao] Your real-name verification was successful. Your account is now verified."
    )
    db.run(
        lambda tx: tx.session.execute(
            update(User).where(User.id == person.id).values(language="zh_Hans")
        )
    )
    db.run(lambda tx: identity.tell(tx, person.id, identity.VERIFIED_SMS))
    chinese = db.run(lambda tx: read_outbox(tx, person.phone.e164, limit=1))[0].body
    assert chinese.startswith("【钱包】") and chinese.count("钱包") == 1, chinese


def test_no_catalogued_sms_brings_its_own_signature() -> None:
    """The old mix ("钱包：", "【Qianbao钱包】", "Qianbao: ") cannot come back through a text:
    no message of the catalogue starts with a signature of its own."""
    catalog = read_po(PO.open("rb"))
    own = [
        message.id
        for message in catalog
        if message.id
        and message.id != SMS_SIGNED  # the signature itself, the one place it lives
        and isinstance(message.id, str)
        and isinstance(message.string, str)
        and (
            message.id.startswith("Qianbao: ")
            or message.string.startswith(("钱包：", "【Qianbao", "【钱包】"))
        )
    ]
    assert own == [], own
