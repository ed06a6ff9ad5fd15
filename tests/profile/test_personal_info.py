"""Personal information after real-name verification: occupation type and address, their
rules, and "Incomplete" until both are filled in."""

from __future__ import annotations

import uuid
from functools import partial

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.i18n import language_scope
from qianbao.profile import service
from qianbao.profile.models import PersonalInfo
from qianbao.profile.regions import OVERSEAS
from qianbao.profile.service import PersonalDetails
from tests.helpers import sign_up

GUANGDONG, GUANGZHOU, NANJING = "440000", "440100", "320100"


@pytest.fixture
def user_id(db: Database) -> uuid.UUID:
    return sign_up(db).account.id


def _get(db: Database, user_id: uuid.UUID) -> PersonalDetails:
    return db.run(lambda tx: service.get_personal_info(tx, user_id))


def _set_address(
    db: Database, user_id: uuid.UUID, state: str, city: str, street: str
) -> PersonalDetails:
    return db.run(lambda tx: service.set_address(tx, user_id, state, city, street))


def _refused(db: Database, user_id: uuid.UUID, state: str, city: str, street: str) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        _set_address(db, user_id, state, city, street)
    assert caught.value.status == 422
    return caught.value


def _row(db: Database, user_id: uuid.UUID) -> tuple[object, ...] | None:
    def read(tx: Tx) -> tuple[object, ...] | None:
        row = tx.session.get(PersonalInfo, user_id)
        if row is None:
            return None
        return (row.occupation, row.state_code, row.city_code, row.street, row.updated_at)

    return db.run(read)


def test_a_new_account_is_incomplete_and_misses_both_fields(
    db: Database, user_id: uuid.UUID
) -> None:
    details = _get(db, user_id)
    assert details.occupation is None and details.address is None
    assert details.missing == ("occupation", "address")
    assert not details.complete
    found = db.run(lambda tx: service.completeness(tx, user_id))
    assert found.missing == ("occupation", "address") and not found.complete
    with language_scope("en"):
        assert service.status_label(False) == "Incomplete"
        assert [service.field_label(f) for f in details.missing] == ["Occupation type", "Address"]
    with language_scope("zh_Hans"):
        assert service.status_label(False) == "未完善"
        assert service.status_label(True) == "已完善"
        assert [service.field_label(f) for f in details.missing] == ["职业类型", "地址"]


def test_completeness_flips_to_complete_once_both_are_filled_in(
    db: Database, user_id: uuid.UUID, clock: FrozenClock
) -> None:
    after_occupation = db.run(lambda tx: service.set_occupation(tx, user_id, "foreign_employee"))
    assert after_occupation.missing == ("address",)
    assert after_occupation.occupation and after_occupation.occupation.code == "foreign_employee"
    clock.advance(seconds=30)
    done = _set_address(db, user_id, OVERSEAS, OVERSEAS, "1 Main Street, Springfield")
    assert done.complete and done.missing == ()
    assert done.updated_at == clock.now()
    assert db.run(lambda tx: service.completeness(tx, user_id)).complete
    assert _row(db, user_id) == (
        "foreign_employee",
        OVERSEAS,
        OVERSEAS,
        "1 Main Street, Springfield",
        clock.now(),
    )


def test_overseas_for_both_state_and_city(db: Database, user_id: uuid.UUID) -> None:
    details = _set_address(db, user_id, OVERSEAS, OVERSEAS, "10 Downing Street, London")
    assert details.address is not None
    assert details.address.state.code == details.address.city.code == OVERSEAS
    with language_scope("en"):
        assert details.address.location() == "Overseas"
    with language_scope("zh_Hans"):
        assert details.address.location() == "海外"


@pytest.mark.parametrize(
    ("code", "en", "zh"),
    [
        ("810000", "Hong Kong", "香港特别行政区"),
        ("820000", "Macau", "澳门特别行政区"),
        ("710000", "Taiwan", "台湾省"),
    ],
)
def test_hong_kong_macau_and_taiwan(
    db: Database, user_id: uuid.UUID, code: str, en: str, zh: str
) -> None:
    details = _set_address(db, user_id, code, code, "Flat 2, 8 Queen's Road")
    assert details.address is not None
    with language_scope("en"):
        assert details.address.location() == en
    with language_scope("zh_Hans"):
        assert details.address.location() == zh


def test_a_mainland_city_in_its_province_and_in_both_languages(
    db: Database, user_id: uuid.UUID
) -> None:
    details = _set_address(db, user_id, GUANGDONG, GUANGZHOU, "天河路 385 号")
    assert details.address is not None
    with language_scope("en"):
        assert details.address.location() == "Guangzhou, Guangdong"
    with language_scope("zh_Hans"):
        assert details.address.location() == "广东省广州市"


def test_a_municipality_is_its_own_city(db: Database, user_id: uuid.UUID) -> None:
    details = _set_address(db, user_id, "110000", "110000", "朝阳区建国路 88 号")
    assert details.address is not None and details.address.city.code == "110000"
    assert _refused(db, user_id, "110000", "110105", "x").code == "profile.city_not_in_region"


def test_a_city_of_another_province_is_refused(db: Database, user_id: uuid.UUID) -> None:
    error = _refused(db, user_id, GUANGDONG, NANJING, "1 Zhongshan Road")
    assert error.code == "profile.city_not_in_region"
    assert error.details == {"field": "city", "state": GUANGDONG}
    with language_scope("en"):
        assert "Guangdong" in error.localized_message()
    with language_scope("zh_Hans"):
        error = _refused(db, user_id, GUANGDONG, NANJING, "1 Zhongshan Road")
        assert "广东省" in error.localized_message()
    # Overseas is a city of Overseas only, and a mainland city is not overseas.
    assert _refused(db, user_id, GUANGDONG, OVERSEAS, "x").code == "profile.city_not_in_region"
    assert _refused(db, user_id, OVERSEAS, GUANGZHOU, "x").code == "profile.city_not_in_region"
    assert _refused(db, user_id, "810000", "820000", "x").code == "profile.city_not_in_region"
    assert _refused(db, user_id, GUANGDONG, "", "x").code == "profile.city_not_in_region"
    assert _row(db, user_id) is None


@pytest.mark.parametrize("state", ["", "999999", "440100", "overseas", "CN", "44"])
def test_an_unknown_state_is_refused(db: Database, user_id: uuid.UUID, state: str) -> None:
    assert _refused(db, user_id, state, GUANGZHOU, "x").code == "profile.unknown_region"


def test_an_unknown_occupation_is_refused_and_nothing_is_written(
    db: Database, user_id: uuid.UUID
) -> None:
    for code in ("", "astronaut", "Student", "student; DROP TABLE users"):
        with pytest.raises(QianbaoError) as caught:
            db.run(partial(service.set_occupation, user_id=user_id, code=code))
        assert caught.value.code == "profile.unknown_occupation"
        assert caught.value.status == 422
    assert _row(db, user_id) is None
    db.run(lambda tx: service.set_occupation(tx, user_id, "student"))
    db.run(lambda tx: service.set_occupation(tx, user_id, " teacher "))
    details = _get(db, user_id)
    assert details.occupation and details.occupation.code == "teacher"


def test_street_is_trimmed_and_any_script_is_accepted(db: Database, user_id: uuid.UUID) -> None:
    streets = {
        "  北京市朝阳区建国路 88 号　\n": "北京市朝阳区建国路 88 号",
        "Flat 3\r\n12 Baker Street ": "Flat 3 12 Baker Street",
        "ул. Тверская, д. 7": "ул. Тверская, д. 7",
        "شارع الملك فهد 12": "شارع الملك فهد 12",
        "東京都港区六本木 6-10-1 🏢": "東京都港区六本木 6-10-1 🏢",
        "Cafe\u0301 Street": "Café Street",  # stored in NFC
    }
    for typed, stored in streets.items():
        details = _set_address(db, user_id, OVERSEAS, OVERSEAS, typed)
        assert details.address is not None
        assert details.address.street == stored


def test_street_length_limits(db: Database, user_id: uuid.UUID) -> None:
    assert _refused(db, user_id, OVERSEAS, OVERSEAS, "").code == "profile.street_empty"
    assert _refused(db, user_id, OVERSEAS, OVERSEAS, " \n\t\u3000 ").code == "profile.street_empty"
    longest = "路" * 200
    details = _set_address(db, user_id, OVERSEAS, OVERSEAS, f"  {longest}  ")
    assert details.address and details.address.street == longest
    error = _refused(db, user_id, OVERSEAS, OVERSEAS, "a" * 201)
    assert error.code == "profile.street_too_long"
    error = _refused(db, user_id, OVERSEAS, OVERSEAS, "x" * 2000)
    assert error.code == "profile.street_too_long"
    assert error.details == {"field": "street", "max_length": 200, "length": 2000}
    with language_scope("en"):
        message = error.localized_message()
    assert "200" in message and "2000" in message
    with language_scope("zh_Hans"):
        assert "200" in error.localized_message()
        assert error.localized_message() != message


@pytest.mark.parametrize(
    "street",
    [
        "1 Main\x00 Street",
        "1 Main\tStreet",
        "1 Main\x1b[31m Street",
        "1 Main\x07Street",
        "1 Main\x7fStreet",
        "1 Main\u0085Street",
        "1 Main \u202eteertS",
        "1 Main \u2066Street\u2069",
        "1 Main \ud800Street",
    ],
)
def test_control_characters_are_refused(db: Database, user_id: uuid.UUID, street: str) -> None:
    error = _refused(db, user_id, OVERSEAS, OVERSEAS, street)
    assert error.code == "profile.street_control_characters"
    assert _row(db, user_id) is None


def test_nothing_is_half_written_when_a_change_is_refused(
    db: Database, user_id: uuid.UUID, clock: FrozenClock
) -> None:
    db.run(lambda tx: service.set_occupation(tx, user_id, "student"))
    _set_address(db, user_id, GUANGDONG, GUANGZHOU, "天河路 385 号")
    before = _row(db, user_id)
    clock.advance(seconds=60)
    _refused(db, user_id, OVERSEAS, OVERSEAS, "x" * 2000)
    _refused(db, user_id, OVERSEAS, GUANGZHOU, "New street")
    _refused(db, user_id, "999999", OVERSEAS, "New street")
    _refused(db, user_id, OVERSEAS, OVERSEAS, "New\x00street")
    with pytest.raises(QianbaoError):
        db.run(lambda tx: service.set_occupation(tx, user_id, "astronaut"))

    # A use case that fails after a good change loses that change too (one transaction).
    def good_then_bad(tx: Tx) -> None:
        service.set_occupation(tx, user_id, "retired")
        service.set_address(tx, user_id, OVERSEAS, OVERSEAS, "")

    with pytest.raises(QianbaoError):
        db.run(good_then_bad)
    assert _row(db, user_id) == before


def test_the_database_refuses_half_an_address(db: Database, user_id: uuid.UUID) -> None:
    def half(tx: Tx) -> None:
        tx.session.execute(
            insert(PersonalInfo).values(
                user_id=user_id,
                state_code=GUANGDONG,
                city_code=None,
                street=None,
                updated_at=tx.now(),
            )
        )

    with pytest.raises(IntegrityError):
        db.run(half)
    assert db.run(lambda tx: tx.session.scalars(select(PersonalInfo)).all()) == []


def test_a_stored_region_no_longer_offered_counts_as_missing(
    db: Database, user_id: uuid.UUID
) -> None:
    _set_address(db, user_id, OVERSEAS, OVERSEAS, "1 Main Street")

    def merge_away(tx: Tx) -> None:
        row = tx.session.get_one(PersonalInfo, user_id)
        row.state_code, row.city_code = "370000", "371200"  # Laiwu, merged into Jinan

    db.run(merge_away)
    assert _get(db, user_id).missing == ("occupation", "address")
