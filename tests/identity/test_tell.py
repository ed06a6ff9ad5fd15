"""SMS to an account: the message is translated, names and amounts are put in as they are."""

from __future__ import annotations

from sqlalchemy import update

from qianbao.db import Database
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.models import User
from qianbao.notify.service import read_outbox
from tests.helpers import sign_up

MESSAGE = N_("Qianbao: {who} paid you. Reason: {reason}.")


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
