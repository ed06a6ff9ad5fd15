"""The "Verify face" use cases on SQLite and PostgreSQL: steps, outcomes, the daily cap,
one passport per verified account, review decisions, sealing, purge and key rotation."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import pytest
from PIL import Image
from sqlalchemy import insert, select

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.identity import security, staff
from qianbao.identity import service as identity
from qianbao.notify import service as notify
from qianbao.sealing import new_key_entry
from qianbao.settings import Settings
from qianbao.verification import liveness, service
from qianbao.verification.models import VerificationCase, VerificationImage
from tests.identity.test_security import security_code
from tests.verification.flow_helpers import (
    CHALLENGE,
    accept_synthetic_clips,
    clip,
    new_person,
    passport,
    reading,
)

SMS_VERIFIED = "real-name verification was successful"


@pytest.fixture(autouse=True)
def fixed_challenge(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The clips are made ahead for one challenge; the service would draw a random one."""
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(settings)


def refused(attempt: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


def to_face_step(db: Database, user_id: uuid.UUID, seed: int = 7) -> uuid.UUID:
    case = db.run(lambda tx: service.start_case(tx, user_id))
    db.run(lambda tx: service.record_page(tx, user_id, case.id, reading(seed)))
    db.run(lambda tx: service.confirm_document(tx, user_id, case.id))
    db.run(lambda tx: service.issue_challenge(tx, user_id, case.id))
    return case.id


def face_try(db: Database, user_id: uuid.UUID, case_id: uuid.UUID, frames: list[bytes]) -> str:
    return service.submit_face(db, user_id, case_id, frames).status


def messages_to(db: Database, account: identity.Account) -> list[str]:
    return [m.body for m in db.run(lambda tx: notify.read_outbox(tx, account.phone.e164, 20))]


def test_a_live_face_that_matches_the_portrait_verifies_the_account(db: Database) -> None:
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    assert face_try(db, person.id, case_id, clip("astronaut")) == "verified"

    account = db.run(lambda tx: identity.get_account(tx, person.id))
    assert account.verification_level == "passport_face"
    shown = db.run(lambda tx: service.verified_identity(tx, person.id))
    data = passport()
    assert shown is not None
    assert shown.name == f"{data.surname} {data.given_names}".replace("<", " ")
    assert shown.nationality == data.nationality
    assert shown.document_masked.endswith(data.document_number[-3:])
    assert data.document_number not in shown.document_masked
    assert db.run(lambda tx: service.verified_birth_date(tx, person.id)) == data.birth_date
    assert any(SMS_VERIFIED in body for body in messages_to(db, person))
    # Verified is final: no second case.
    assert refused(lambda: db.run(lambda tx: service.start_case(tx, person.id))).code == (
        "verification.already_verified"
    )


def test_the_flow_can_be_left_and_resumed_at_its_step(db: Database) -> None:
    person = new_person(db)
    first = db.run(lambda tx: service.start_case(tx, person.id))
    db.run(lambda tx: service.record_page(tx, person.id, first.id, reading()))
    again = db.run(lambda tx: service.start_case(tx, person.id))
    assert (again.id, again.status) == (first.id, "confirm")
    assert again.document is not None and again.document.surname == passport().surname.replace(
        "<", " "
    )
    # A wrong read goes back to step 1; the next page replaces the first.
    back = db.run(lambda tx: service.retake_page(tx, person.id, first.id))
    assert back.status == "passport" and back.document is None


def test_a_still_photo_is_refused_and_the_try_counts(db: Database) -> None:
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    before = db.run(lambda tx: service.current_case(tx, person.id))
    still = [clip("astronaut")[0]] * 20
    error = refused(lambda: face_try(db, person.id, case_id, still))
    assert error.code.startswith("liveness.")
    assert error.details["tries_left"] == before.tries_left - 1  # type: ignore[union-attr]
    after = db.run(lambda tx: service.current_case(tx, person.id))
    assert after is not None and after.status == "face" and after.challenge is None
    # The challenge answered one try: a replay needs a new one.
    replay = refused(lambda: face_try(db, person.id, case_id, clip("astronaut")))
    assert replay.code == "liveness.challenge_expired"


def test_someone_else_s_face_does_not_verify(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # Grace Hopper's glasses hide a synthetic blink: her clip turns and smiles.
    challenge = ("turn_right", "smile")
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: challenge)
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    error = refused(lambda: face_try(db, person.id, case_id, clip("grace_hopper", challenge)))
    assert error.code == "face.no_match"
    account = db.run(lambda tx: identity.get_account(tx, person.id))
    assert account.verification_level == "unverified"


def test_the_daily_cap_refuses_with_the_time_of_the_next_try(
    db: Database, clock: FrozenClock
) -> None:
    db.settings.verification_attempts_per_day = 2
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    still = [clip("astronaut")[0]] * 20
    for _ in range(2):
        refused(lambda: face_try(db, person.id, case_id, still))
        db.run(lambda tx: service.issue_challenge(tx, person.id, case_id))
        clock.advance(seconds=60)
    capped = refused(lambda: face_try(db, person.id, case_id, clip("astronaut")))
    assert capped.code == "verification.daily_cap" and capped.status == 429
    assert capped.retry_after is not None and 0 < capped.retry_after <= 24 * 3600
    assert "next_try_at" in capped.details
    clock.advance(seconds=capped.retry_after)
    db.run(lambda tx: service.issue_challenge(tx, person.id, case_id))
    assert face_try(db, person.id, case_id, clip("astronaut")) == "verified"


def test_an_expired_challenge_must_be_asked_again(db: Database, clock: FrozenClock) -> None:
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    clock.advance(seconds=db.settings.verification_challenge_ttl_seconds + 1)
    error = refused(lambda: face_try(db, person.id, case_id, clip("astronaut")))
    assert error.code == "liveness.challenge_expired"


def test_steps_out_of_order_are_refused(db: Database) -> None:
    person = new_person(db)
    case = db.run(lambda tx: service.start_case(tx, person.id))
    for step in (service.confirm_document, service.issue_challenge):
        error = refused(lambda step=step: db.run(lambda tx: step(tx, person.id, case.id)))
        assert error.code == "verification.wrong_step"
    stranger = new_person(db, "07400 123456")
    error = refused(lambda: db.run(lambda tx: service.confirm_document(tx, stranger.id, case.id)))
    assert error.code == "verification.no_case"


def test_a_borderline_score_goes_to_a_reviewer_who_approves(db: Database) -> None:
    # Widen the review band so that this genuine pair lands in it.
    db.settings.face_match_threshold, db.settings.face_review_margin = 0.45, 0.44
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    assert face_try(db, person.id, case_id, clip("astronaut")) == "review"
    queue = db.run(service.review_queue)
    assert [item.id for item in queue] == [case_id]
    assert queue[0].reason == "face.borderline"

    reviewer = staff.create_staff(db, "ada", "Ada Reviewer", "a long reviewer passphrase")
    case = db.run(lambda tx: service.review_case(tx, case_id))
    assert case.document is not None and case.face_distance is not None
    assert {kind for _, kind, _ in case.images} == {"page", "portrait", "selfie"}
    image_id = next(image_id for image_id, kind, _ in case.images if kind == "portrait")
    assert db.run(lambda tx: service.case_image(tx, case_id, image_id)).startswith(b"\xff\xd8")

    error = refused(
        lambda: db.run(lambda tx: service.decide(tx, reviewer.id, case_id, "approve", "other", ""))
    )
    assert error.code == "review.note_required"
    db.run(
        lambda tx: service.decide(tx, reviewer.id, case_id, "approve", "face_matches", "same nose")
    )
    account = db.run(lambda tx: identity.get_account(tx, person.id))
    assert account.verification_level == "passport_face"
    decided = db.run(lambda tx: service.review_case(tx, case_id))
    assert [(d.reviewer, d.decision, d.reason, d.note) for d in decided.decisions] == [
        ("Ada Reviewer", "approve", "face_matches", "same nose")
    ]
    assert any(SMS_VERIFIED in body for body in messages_to(db, person))
    again = refused(
        lambda: db.run(lambda tx: service.decide(tx, reviewer.id, case_id, "reject", "other", "x"))
    )
    assert again.code == "review.decided"


def test_one_passport_verifies_one_account(db: Database) -> None:
    first = new_person(db)
    case_one = to_face_step(db, first.id)
    assert face_try(db, first.id, case_one, clip("astronaut")) == "verified"

    second = new_person(db, "07400 123456")
    case_two = to_face_step(db, second.id)  # the same passport
    assert face_try(db, second.id, case_two, clip("astronaut")) == "review"
    assert db.run(lambda tx: service.current_case(tx, second.id)).reason == "document.in_use"  # type: ignore[union-attr]

    reviewer = staff.create_staff(db, "bob", "Bob", "a long reviewer passphrase")
    approve = refused(
        lambda: db.run(
            lambda tx: service.decide(tx, reviewer.id, case_two, "approve", "face_matches", "")
        )
    )
    assert approve.code == "document.in_use"
    db.run(lambda tx: service.decide(tx, reviewer.id, case_two, "reject", "document_in_use", ""))
    assert db.run(lambda tx: identity.get_account(tx, second.id)).verification_level == (
        "unverified"
    )
    assert any(
        "not approved" in body and "another account" in body for body in messages_to(db, second)
    )
    assert db.run(lambda tx: service.current_case(tx, second.id)).status == "rejected"  # type: ignore[union-attr]


def test_passport_data_and_images_are_sealed_at_rest(db: Database) -> None:
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    face_try(db, person.id, case_id, clip("astronaut"))
    data = passport()
    with db.engine.connect() as connection:
        case_row = connection.execute(
            select(VerificationCase.__table__).where(VerificationCase.id == case_id)
        ).one()
        images = connection.execute(select(VerificationImage.sealed)).scalars().all()
    stored = b"".join(
        value if isinstance(value, bytes) else str(value).encode()
        for value in case_row
        if value is not None
    )
    assert data.document_number.encode() not in stored
    assert data.surname.split("<")[0].encode() not in stored
    # No stored image opens as one (a check on the first bytes alone, FF D8, failed once in
    # 65,536 runs: a sealed blob begins with a random nonce).
    assert images and not any(_opens_as_image(blob) for blob in images)


def _opens_as_image(blob: bytes) -> bool:
    try:
        Image.open(io.BytesIO(blob)).verify()
    except Exception:
        return False
    return True


def test_key_rotation_reseals_everything_and_it_still_opens(db: Database) -> None:
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    face_try(db, person.id, case_id, clip("astronaut"))
    old_keys = (db.settings.var_dir / "sealing.keys").read_text()
    db.settings.sealing_keys = f"{new_key_entry('k2')},{old_keys}"
    while db.run(service.rotate_keys):
        pass
    with db.engine.connect() as connection:
        key_ids = set(connection.execute(select(VerificationImage.key_id)).scalars())
    assert key_ids == {"k2"}
    shown = db.run(lambda tx: service.verified_identity(tx, person.id))
    assert shown is not None and shown.nationality == passport().nationality


def test_images_are_purged_after_retention_but_the_decision_stays(
    db: Database, clock: FrozenClock
) -> None:
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    face_try(db, person.id, case_id, clip("astronaut"))
    assert db.run(service.purge_images) == (0, 0)  # too early
    clock.advance(seconds=(db.settings.verification_image_retention_days + 1) * 86400)
    cases, images = db.run(service.purge_images)
    assert cases == 1 and images > 0
    with db.engine.connect() as connection:
        assert connection.execute(select(VerificationImage.id)).first() is None
    kept = db.run(lambda tx: service.verified_identity(tx, person.id))
    assert kept is not None and kept.document_masked  # the masked facts stay
    assert db.run(lambda tx: identity.get_account(tx, person.id)).verification_level == (
        "passport_face"
    )
    assert db.run(service.purge_images) == (0, 0)


def test_the_database_refuses_a_second_verified_account_for_one_passport(db: Database) -> None:
    from qianbao.verification.models import VerifiedDocument

    first = new_person(db)
    case_id = to_face_step(db, first.id)
    face_try(db, first.id, case_id, clip("astronaut"))
    second = new_person(db, "07400 123456")
    other_case = db.run(lambda tx: service.start_case(tx, second.id)).id

    def write_around_the_service(tx: object) -> None:
        session = tx.session  # type: ignore[attr-defined]
        row = session.scalar(select(VerifiedDocument))
        session.execute(
            insert(VerifiedDocument).values(
                document_hash=row.document_hash,
                user_id=second.id,
                case_id=other_case,
                verified_at=row.verified_at,
            )
        )

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        db.run(write_around_the_service)


def test_a_verified_person_resets_the_payment_password_after_a_face_check(
    db: Database, clock: FrozenClock
) -> None:
    db.settings.sms_per_purpose_per_hour = 5  # four security codes below, within the hour
    person = new_person(db)
    case_id = to_face_step(db, person.id)
    face_try(db, person.id, case_id, clip("astronaut"))
    security.set_payment_password(
        db, person.id, "802417", sms_code=security_code(db, person.id, clock)
    )

    # Forgotten: an SMS code alone no longer resets it.
    error = refused(
        lambda: security.set_payment_password(
            db, person.id, "603914", sms_code=security_code(db, person.id, clock)
        )
    )
    assert error.code == "paypw.face_check_required"

    still = [clip("astronaut")[0]] * 20
    check = db.run(lambda tx: service.start_face_check(tx, person.id))
    assert refused(
        lambda: service.submit_face_check(db, person.id, check.id, still)
    ).code.startswith("liveness.")
    check = db.run(lambda tx: service.start_face_check(tx, person.id))
    service.submit_face_check(db, person.id, check.id, clip("astronaut"))
    security.set_payment_password(
        db, person.id, "603914", sms_code=security_code(db, person.id, clock)
    )
    security.verify_payment_password(db, person.id, "603914")
    # One face check, one reset.
    again = refused(
        lambda: security.set_payment_password(
            db, person.id, "715320", sms_code=security_code(db, person.id, clock)
        )
    )
    assert again.code == "paypw.face_check_required"


def test_an_unverified_person_cannot_start_a_face_check(db: Database) -> None:
    person = new_person(db)
    error = refused(lambda: db.run(lambda tx: service.start_face_check(tx, person.id)))
    assert error.code == "face_check.not_verified"
